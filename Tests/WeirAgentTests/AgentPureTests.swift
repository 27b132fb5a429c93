import Testing
@testable import WeirAgent
import WeirCore

/// Pure parts of the agent: the configuration file, log and label escaping, /config JSON, histograms, reload rules.
struct ConfigFileTests {
    @Test func parsesKeyValueLinesWithCommentsQuotesAndExport() throws {
        let f = try ConfigFile.parse("""
            # weir
            ISTIO_INBOUND_PORTS=*
            export ISTIO_SERVICE_CIDR="198.18.0.0/15"\r
              WEIR_IDLE_TIMEOUT = '10m'

            ISTIO_LOCAL_EXCLUDE_PORTS=22
            ISTIO_LOCAL_EXCLUDE_PORTS=22,10250
            """, path: "/etc/weir/weir.conf")
        #expect(f.values == ["ISTIO_INBOUND_PORTS": "*", "ISTIO_SERVICE_CIDR": "198.18.0.0/15",
                             "WEIR_IDLE_TIMEOUT": "10m", "ISTIO_LOCAL_EXCLUDE_PORTS": "22,10250"])
        #expect(f.source("ISTIO_LOCAL_EXCLUDE_PORTS") == "/etc/weir/weir.conf:7 ISTIO_LOCAL_EXCLUDE_PORTS")
    }

    @Test func refusesUnknownKeysAndLinesWithoutEqualsNamingFileAndLine() {
        for (text, expected) in [
            ("ISTIO_SERVICE_CIRD=*", "f.conf:1 'ISTIO_SERVICE_CIRD' is not a known key: expected"),
            ("\nWEIR_BOGUS=1", "f.conf:2 'WEIR_BOGUS' is not a known key"),
            ("just words", "f.conf:1 'just words' is not KEY=VALUE: expected"),
            ("ENVOY_PORT=1\u{1}5001", "f.conf:1 ENVOY_PORT '1\\x015001' holds a control character"),
        ] {
            do {
                _ = try ConfigFile.parse(text, path: "f.conf")
                Issue.record("accepted \(text)")
            } catch let e as ConfigError {
                #expect(e.message.hasPrefix(expected), "\(e.message)")
                #expect(!e.message.contains("\n"))
            } catch {
                Issue.record("\(error)")
            }
        }
    }

    @Test func booleans() throws {
        let f = try ConfigFile.parse("WEIR_CLEANUP_ON_EXIT=yes\nWEIR_IPV4_ONLY=maybe", path: "f")
        #expect(try f.bool("WEIR_CLEANUP_ON_EXIT") == true)
        #expect(throws: ConfigError.self) { try f.bool("WEIR_IPV4_ONLY") }
    }
}

struct EscapingTests {
    @Test func logValuesCannotSplitARecordOrForgeAField() {
        let line = EventLine.format("weir run", "x", ["a": "plain", "b": "two words", "c": "q\"uote\\", "d": "line\nbreak",
                                                      "e": "k=v", "f": ""])
        #expect(line == #"weir run: event=x a=plain b="two words" c="q\"uote\\" d="line\nbreak" e="k=v" f="""#)
        #expect(!line.contains("\n"))
    }

    @Test func metricLabelValuesAreEscaped() {
        let s = MetricSample(name: "m", labels: ["v": "a\"b\\c\nd"], value: 1)
        #expect(s.labelText == #"{v="a\"b\\c\nd"}"#)
    }
}

struct HistogramTests {
    @Test func rendersCumulativeBucketsSumAndCount() {
        var h = HistogramSnapshot(name: "weir_x_seconds", bounds: [0.001, 0.01, 1])
        for v in [0.0005, 0.001, 0.005, 2.0] { h.counts[HistogramSnapshot.slot(of: v, bounds: h.bounds)] += 1; h.sum += v }
        let text = MetricsText.render([MetricSample(name: "weir_a", value: 1)], histograms: [h])
        #expect(text == """
            # HELP weir_a weir a
            # TYPE weir_a gauge
            weir_a 1
            # HELP weir_x_seconds weir x seconds
            # TYPE weir_x_seconds histogram
            weir_x_seconds_bucket{le="0.001"} 2
            weir_x_seconds_bucket{le="0.01"} 3
            weir_x_seconds_bucket{le="1"} 3
            weir_x_seconds_bucket{le="+Inf"} 4
            weir_x_seconds_sum 2.0065
            weir_x_seconds_count 4

            """)
    }
}

struct AgentConfigJSONTests {
    @Test func rendersTheEffectiveConfigurationDeterministically() throws {
        let capture = try CaptureConfig.parse(flags: ["istio-inbound-ports": ["*"], "istio-service-cidr": ["198.18.0.0/15"],
                                                      "istio-local-exclude-ports": ["22,10250"]])
        let text = AgentConfigJSON.render(capture: capture, proxy: ProxyConfig(), agent: [("profile", .null),
                                                                                        ("note", .string("a\"b\n"))])
        #expect(text.contains("\"inbound_ports\": \"*\""))
        #expect(text.contains("\"inbound_ports_exclude\": [\n      22,\n      10250\n    ]"))
        #expect(text.contains("\"outbound_include_cidrs\": [\n      \"198.18.0.0/15\"\n    ]"))
        #expect(text.contains("\"profile\": null"))
        #expect(text.contains(#""note": "a\"b\n""#))
        // Deterministic: the same settings given in another order, with a duplicate, render byte-identical text;
        // a different setting does not.
        let shuffled = try CaptureConfig.parse(flags: ["istio-local-exclude-ports": ["10250,22,22"],
                                                       "istio-service-cidr": ["198.18.0.0/15"],
                                                       "istio-inbound-ports": ["*"]])
        #expect(text == AgentConfigJSON.render(capture: shuffled, proxy: ProxyConfig(),
                                               agent: [("profile", .null), ("note", .string("a\"b\n"))]))
        let other = try CaptureConfig.parse(flags: ["istio-inbound-ports": ["*"], "istio-service-cidr": ["198.18.0.0/15"],
                                                    "istio-local-exclude-ports": ["22"]])
        #expect(text != AgentConfigJSON.render(capture: other, proxy: ProxyConfig(),
                                               agent: [("profile", .null), ("note", .string("a\"b\n"))]))
    }
}

struct ReloadRulesTests {
    @Test func onlyTheAdminAddressAndTheProfileNeedARestart() throws {
        let base = AgentSettings(capture: try CaptureConfig.parse(flags: ["istio-inbound-ports": ["*"]]),
                                 proxy: ProxyConfig(), adminHost: "127.0.0.1", adminPort: 15020)
        var rules = base
        rules.capture = try CaptureConfig.parse(flags: ["istio-inbound-ports": ["*"], "istio-local-exclude-ports": ["22"]])
        #expect(base.needsRestart(rules).isEmpty)
        var ports = base
        ports.proxy.proxyPort = 15101
        ports.proxy.idleTimeoutMs = 60_000
        #expect(base.needsRestart(ports).isEmpty)
        ports.adminPort = 15021
        ports.profile = "default"
        #expect(base.needsRestart(ports) == ["WEIR_ADMIN_ADDRESS", "WEIR_PROFILE"])
    }
}

struct WatchdogTests {
    @Test func aWedgedWorkerOrAdminLoopWithholdsThePing() {
        #expect(Agent.staleLoops(workers: [10_000, 9_500], admin: 9_900, now: 10_200).isEmpty)
        #expect(Agent.staleLoops(workers: [10_000, 6_000], admin: 9_900, now: 10_200) == ["worker-1"])
        #expect(Agent.staleLoops(workers: [10_000], admin: 5_000, now: 10_200) == ["admin"])
        // /healthz follows the same rule: 503 naming what stopped, 200 otherwise.
        #expect(Agent.health([]).status == 200)
        let stale = Agent.health(Agent.staleLoops(workers: [10_000, 6_000], admin: 10_200, now: 10_200))
        #expect(stale.status == 503 && stale.body == "unhealthy: no progress in worker-1\n", "\(stale.body)")
    }
}
