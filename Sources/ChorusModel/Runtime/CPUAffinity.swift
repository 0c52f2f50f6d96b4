import CChorusEngine

/// Pinning a process to one core, for measurements that must not share a core: the demo and the benchmarks put
/// the coordinator (the target) on one core and the draft workers on another, as separate machines would be.
public enum CPUAffinity {
    public struct Failure: Error, CustomStringConvertible {
        public let cpu: Int
        public let code: Int32
        public var description: String {
            "cannot pin this process to CPU \(cpu) (errno \(code)): is the CPU online and allowed (taskset -p $$)?"
        }
    }

    /// Pins every thread of this process, and the threads it starts later, to CPU `cpu`.
    public static func pinProcess(toCPU cpu: Int) throws(Failure) {
        let code = chorus_pin_process(Int32(clamping: cpu))
        guard code == 0 else { throw Failure(cpu: cpu, code: code) }
    }
}
