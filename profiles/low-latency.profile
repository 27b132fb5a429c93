# weir profile: low-latency
# Request/response traffic where tail latency matters more than CPU or bandwidth (RPC meshes, trading, games).
# Format: `key = value [raise-only]  # why` (see README.md).

net.core.somaxconn = 8192 raise-only                 # An overflowing accept queue costs a SYN retransmit: one second
                                                     # added to the tail.
net.ipv4.tcp_max_syn_backlog = 8192 raise-only       # Same for the SYN queue.
net.ipv4.tcp_syncookies = 1                          # Never drop SYNs when the queue is full.
net.ipv4.tcp_abort_on_overflow = 0                   # Retry rather than reset on a full queue.
net.ipv4.tcp_slow_start_after_idle = 0               # Keep the congestion window of idle keep-alive connections, so the
                                                     # next request is not slowed down by slow start.
net.ipv4.tcp_notsent_lowat = 16384                   # Queue less unsent data in the kernel, so urgent writes (HTTP/2
                                                     # frames) are not stuck behind a bulk transfer.
net.core.busy_poll = 50                              # Busy-poll the NIC for 50 us in poll/epoll before sleeping:
                                                     # trades CPU for latency (global key).
net.core.busy_read = 50                              # The same for blocking reads (global key).
net.ipv4.tcp_tw_reuse = 1                            # New outbound connections do not wait for TIME-WAIT ports.
net.ipv4.tcp_fin_timeout = 30                        # Free orphaned sockets sooner than the 60 s default.
conntrack.per_core = 32768                           # kube-proxy's default, per CPU weir may use (cgroup-limited).
conntrack.min = 131072                               # kube-proxy's floor.
conntrack.cap = 1048576                              # Bound on kernel memory.
net.netfilter.nf_conntrack_max = derived raise-only  # max(per_core x CPUs, min), capped; a full table drops SYNs.
sys.module.nf_conntrack.parameters.hashsize = derived raise-only  # conntrack max / 4 for short lookups.
net.netfilter.nf_conntrack_tcp_timeout_established = 86400  # kube-proxy's 24 h instead of 5 days.
net.netfilter.nf_conntrack_tcp_timeout_close_wait = 3600    # kube-proxy's 1 h.
