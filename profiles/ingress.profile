# weir profile: ingress
# Ingress and gateway nodes: many concurrent connections, long-lived WebSocket-style traffic, many upstream
# connections from few addresses. Format: `key = value [raise-only]  # why` (see README.md).

net.core.somaxconn = 65535 raise-only                # The accept queue overflowed during a reconnect storm after a
                                                     # deploy; the kubelet's probes got no answer and Kubernetes
                                                     # restarted healthy proxies, which caused the next storm.
net.ipv4.tcp_max_syn_backlog = 65535 raise-only      # SYN queue as deep as the accept queue, so a storm is absorbed
                                                     # instead of dropped.
net.ipv4.tcp_syncookies = 1                          # Survive SYN floods without dropping real clients.
net.ipv4.tcp_abort_on_overflow = 0                   # Let clients retry on a full queue rather than reset them.
net.ipv4.tcp_migrate_req = 1                         # nginx's binary upgrade and envoy's hot restart close listeners
                                                     # that share their port with the new ones: hand the handshakes
                                                     # in their queues over instead of resetting them (Linux 5.14+).
net.core.netdev_max_backlog = 16384 raise-only       # Bursts of small packets (WebSocket frames) on busy NICs overrun
                                                     # the default 1000 per CPU (global key).
net.ipv4.ip_local_port_range = 10240 65535           # Upstream connections from one proxy address to few backends run
                                                     # out of the default 28k ports. NodePorts (30000-32767) fall
                                                     # inside: reserve them with ip_local_reserved_ports if used.
net.ipv4.tcp_tw_reuse = 1                            # Reuse TIME-WAIT ports for new outbound connections to upstreams.
net.ipv4.tcp_fin_timeout = 15                        # Clients on mobile networks vanish; free their sockets sooner.
net.ipv4.tcp_max_tw_buckets = 262144 raise-only      # Enough TIME-WAIT slots for the churn of short requests.
net.ipv4.tcp_keepalive_time = 300                    # Find dead WebSocket peers in minutes, not after 2 hours, and keep
                                                     # NAT and load-balancer state alive (cloud LB idle timeouts
                                                     # are 350 s and more).
net.ipv4.tcp_keepalive_intvl = 30                    # Probe every 30 s once the connection is idle.
net.ipv4.tcp_keepalive_probes = 5                    # Give up after 5 unanswered probes (2.5 minutes).
conntrack.per_core = 65536                           # Twice kube-proxy's default: every client connection and every
                                                     # upstream connection holds an entry for hours. CPUs are the ones
                                                     # weir may use (cgroup quota and cpuset), not the host's: nginx's
                                                     # `worker_processes auto` ignored cgroup limits.
conntrack.min = 262144                               # A conntrack table filled on a 2-CPU ingress node and dropped new
                                                     # connections while old WebSockets idled.
conntrack.cap = 2097152                              # About 640 MiB of kernel memory at most.
net.netfilter.nf_conntrack_max = derived raise-only  # max(per_core x CPUs, min), capped.
sys.module.nf_conntrack.parameters.hashsize = derived raise-only  # conntrack max / 4, so chains stay short.
net.netfilter.nf_conntrack_tcp_timeout_established = 86400  # 24 h like kube-proxy; keepalives every 300 s refresh
                                                     # live WebSockets, so only dead ones expire.
net.netfilter.nf_conntrack_tcp_timeout_close_wait = 3600    # Clean up after backends that never close their side.
