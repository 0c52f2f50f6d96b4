import ArgumentParser
import ChorusModel
import Foundation

/// Line-oriented output to stdout/stderr without buffering surprises.
enum FileHandleOutput {
    case standardOutput, standardError

    func write(_ text: String) {
        let handle = self == .standardOutput ? FileHandle.standardOutput : FileHandle.standardError
        handle.write(Data(text.utf8))
    }
}

/// `value` with `digits` decimals.
func fixed(_ value: Double, _ digits: Int = 6) -> String {
    String(format: "%.\(digits)f", value)
}

func padded(_ s: String, _ width: Int) -> String {
    s.count >= width ? s : s + String(repeating: " ", count: width - s.count)
}

extension Precision: ExpressibleByArgument {}
