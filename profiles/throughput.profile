# weir profile: throughput
# Bulk transfer: large objects, backups, streaming between data centres, where bytes per second matter most.
# Format: `key = value [raise-only]  # why` (see README.md).

net.core.somaxconn = 8192 raise-only                 # Accept queue deep enough that bursts of new transfers are not
                                                     # dropped and retried a second later.
net.ipv4.tcp_max_syn_backlog = 8192 raise-only       # SYN queue to match.
net.core.netdev_max_backlog = 16384 raise-only       # At 10 Gb/s and more, 1000 packets per CPU overflow between two
                                                     # softirq runs (global key).
net.core.rmem_max = 16777216 raise-only              # Let autotuning grow receive windows to 16 MiB: enough for
                                                     # 10 Gb/s at about 13 ms round trip (global key).
net.core.wmem_max = 16777216 raise-only              # The same for send buffers (global key).
net.ipv4.tcp_rmem = 4096 131072 16777216 raise-only  # min, default, max of autotuned receive buffers per socket.
net.ipv4.tcp_wmem = 4096 65536 16777216 raise-only   # min, default, max of autotuned send buffers per socket.
net.ipv4.tcp_slow_start_after_idle = 0               # Long-lived transfers that pause keep their window.
net.ipv4.tcp_mtu_probing = 1                         # Find a working MSS when ICMP "fragmentation needed" is filtered
                                                     # (black-hole routers stall big transfers).
net.ipv4.ip_local_port_range = 32768 60999           # The kernel default; bulk traffic uses few connections.
net.ipv4.tcp_fin_timeout = 30                        # Free orphaned sockets sooner than the 60 s default.
conntrack.per_core = 32768                           # kube-proxy's default, per CPU weir may use (cgroup-limited).
conntrack.min = 131072                               # kube-proxy's floor.
conntrack.cap = 1048576                              # Bound on kernel memory.
net.netfilter.nf_conntrack_max = derived raise-only  # max(per_core x CPUs, min), capped.
sys.module.nf_conntrack.parameters.hashsize = derived raise-only  # conntrack max / 4.
net.netfilter.nf_conntrack_tcp_timeout_established = 86400  # kube-proxy's 24 h instead of 5 days.
net.netfilter.nf_conntrack_tcp_timeout_close_wait = 3600    # kube-proxy's 1 h.
