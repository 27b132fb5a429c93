import Testing
import WeirCore

struct MetricsTextTests {
    @Test func rendersSortedFamiliesWithTypes() {
        let text = MetricsText.render([
            MetricSample(name: "weir_proxy_connections_active", value: 3),
            MetricSample(name: "weir_conntrack_drop_total", labels: ["cpu": "1"], value: 2),
            MetricSample(name: "weir_conntrack_drop_total", labels: ["cpu": "0"], value: 5),
            MetricSample(name: "weir_conntrack_usage_ratio", value: 0.25),
        ], help: ["weir_proxy_connections_active": "Connections open now."])
        #expect(text == """
            # HELP weir_conntrack_drop_total weir conntrack drop total
            # TYPE weir_conntrack_drop_total counter
            weir_conntrack_drop_total{cpu="0"} 5
            weir_conntrack_drop_total{cpu="1"} 2
            # HELP weir_conntrack_usage_ratio weir conntrack usage ratio
            # TYPE weir_conntrack_usage_ratio gauge
            weir_conntrack_usage_ratio 0.25
            # HELP weir_proxy_connections_active Connections open now.
            # TYPE weir_proxy_connections_active gauge
            weir_proxy_connections_active 3

            """)
    }
}
