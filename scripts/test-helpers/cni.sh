# Sourced by scripts that attach a pod to a running pod-mode agent (symbol-order.sh, check-alerts.sh): the CNI plugin
# run as a runtime runs it, from a network namespace, with the network config on stdin and a previous result from a
# plugin before it. The plugin's reply goes to stdout (errors as CNI error objects); the exit status is the plugin's.
# cni_add BIN NODE_NETNS AGENT_SOCKET POD_NETNS_PATH CONTAINER_ID POD_NAMESPACE POD_NAME POD_UID
cni_add() {
  printf '{"cniVersion":"1.0.0","name":"weir-scripts","type":"weir","agentSocket":"%s","prevResult":%s}' \
    "$3" '{"cniVersion":"1.0.0","interfaces":[],"ips":[]}' |
    ip netns exec "$2" env CNI_COMMAND=ADD CNI_CONTAINERID="$5" CNI_NETNS="$4" CNI_IFNAME=eth0 \
      CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=$6;K8S_POD_NAME=$7;K8S_POD_UID=$8" CNI_PATH=/usr/lib/cni "$1"
}
