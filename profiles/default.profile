# weir profile: default
# The baseline for every node weir runs on. It fixes the settings that have caused outages on ordinary nodes and
# otherwise stays close to the kernel's defaults. Format: `key = value [raise-only]  # why` (see README.md).
# Values marked raise-only are never lowered below what the node already has, so weir does not fight kube-proxy,
# tuned or an operator who set a higher value on purpose.

net.core.somaxconn = 4096 raise-only                 # Caps every listen() backlog. Kernels before 5.4 default to 128:
                                                     # a burst of connections filled the accept queue, the kubelet's
                                                     # probes timed out and Kubernetes restarted healthy proxies.
net.ipv4.tcp_max_syn_backlog = 4096 raise-only       # Half-open connections waiting for the final ACK; keep it at least
                                                     # as large as somaxconn so SYNs are not dropped first.
net.ipv4.tcp_syncookies = 1                          # When the SYN queue is full anyway, answer with cookies instead of
                                                     # dropping.
net.ipv4.tcp_abort_on_overflow = 0                   # On a full accept queue, drop the ACK so the client retries;
                                                     # 1 would send resets to clients for a short burst.
net.ipv4.tcp_migrate_req = 1                         # A listener closed while others share its port (SO_REUSEPORT:
                                                     # nginx's binary upgrade, envoy's hot restart; weir's reload
                                                     # keeps its sockets) hands the handshakes still in its queues
                                                     # to them instead of resetting those clients (Linux 5.14+).
net.core.netdev_max_backlog = 1000 raise-only        # Packets queued per CPU before the stack takes them; the kernel
                                                     # default, listed so the dry run shows it (global key).
net.ipv4.ip_local_port_range = 32768 60999           # The kernel default, stated so an apply undoes an odd value left
                                                     # by something else; ingress widens it.
net.ipv4.tcp_tw_reuse = 2                            # Kernel default: reuse TIME-WAIT ports for loopback only.
net.ipv4.tcp_fin_timeout = 30                        # Orphaned FIN-WAIT-2 sockets after a peer vanished hold memory
                                                     # and a port for 60 s by default; 30 s is plenty on a LAN.
conntrack.per_core = 32768                           # kube-proxy's --conntrack-max-per-core default. CPUs are the ones
                                                     # weir may use (cgroup quota and cpuset), never the host count:
                                                     # nginx's `worker_processes auto` read 64 host CPUs in a 4-CPU pod.
conntrack.min = 131072                               # kube-proxy's --conntrack-min default: the floor on small nodes.
conntrack.cap = 1048576                              # Upper bound; each entry costs about 320 bytes of kernel memory.
net.netfilter.nf_conntrack_max = derived raise-only  # max(per_core x CPUs, min), capped. A full table drops new flows
                                                     # silently ("nf_conntrack: table full, dropping packet").
sys.module.nf_conntrack.parameters.hashsize = derived raise-only  # conntrack max / 4 buckets, as kube-proxy sets it;
                                                     # fewer buckets make every lookup walk long chains.
net.netfilter.nf_conntrack_tcp_timeout_established = 86400  # kube-proxy's value (24 h). The kernel's 5 days keeps
                                                     # entries of peers that vanished and fills the table.
net.netfilter.nf_conntrack_tcp_timeout_close_wait = 3600    # kube-proxy's value (1 h): CLOSE_WAIT left by
                                                     # applications that never close their side.
