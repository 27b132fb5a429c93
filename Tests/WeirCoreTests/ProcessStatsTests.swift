import Testing
import WeirCore

@Suite struct ProcessStatsTests {
    // A command name with a space and a parenthesis, as a process may set it: fields count from the last ')'.
    let stat = "4242 (weir (x) y) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 50 0 0 20 0 5 0 1000 123456789 "
        + "4000 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
    let procStat = "cpu  1 2 3\nintr 5\nbtime 1700000000\nprocesses 9\n"

    @Test func parsesCPUMemoryStartAndDescriptors() throws {
        let p = try #require(ProcessStats.parse(stat: stat, procStat: procStat, ticksPerSecond: 100,
                                                pageSize: 4096, openFDs: 12, maxFDs: 20000))
        #expect(p.cpuSeconds == 3.0)  // (250 + 50) ticks
        #expect(p.residentBytes == 4000 * 4096)
        #expect(p.virtualBytes == 123_456_789)
        #expect(p.startTimeSeconds == 1_700_000_010)  // btime + 1000 ticks
        let names = p.metricSamples.map(\.name)
        for n in ["process_cpu_seconds_total", "process_resident_memory_bytes", "process_start_time_seconds",
                  "process_open_fds", "process_max_fds"] {
            #expect(names.contains(n), "\(n)")
        }
    }

    @Test func refusesTextThatIsNotTheKernels() {
        #expect(ProcessStats.parse(stat: "4242 (weir) S 1", procStat: procStat, ticksPerSecond: 100, pageSize: 4096,
                                   openFDs: 1, maxFDs: 1) == nil)
        #expect(ProcessStats.parse(stat: stat, procStat: "cpu 1\n", ticksPerSecond: 100, pageSize: 4096,
                                   openFDs: 1, maxFDs: 1) == nil)
    }
}
