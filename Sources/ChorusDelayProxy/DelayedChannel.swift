import Foundation

/// A FIFO of chunks, each with the monotonic time it may be written; `nil` bytes mark end of stream.
final class DelayedChannel: @unchecked Sendable {
    struct Item {
        var bytes: [UInt8]?
        var due: UInt64
    }

    private let condition = NSCondition()
    private var items: [Item] = []
    private var head = 0
    private var queuedBytes = 0
    private var aborted = false
    private let limit: Int

    init(limit: Int) { self.limit = limit }

    /// Waits while more than `limit` bytes are queued; false once the channel was aborted.
    func push(_ bytes: [UInt8], due: UInt64) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while queuedBytes >= limit && !aborted { condition.wait() }
        guard !aborted else { return false }
        items.append(Item(bytes: bytes, due: due))
        queuedBytes += bytes.count
        condition.broadcast()
        return true
    }

    func finish(due: UInt64) {
        condition.lock()
        items.append(Item(bytes: nil, due: due))
        condition.broadcast()
        condition.unlock()
    }

    /// The next item in order, or nil once the channel was aborted.
    func pop() -> Item? {
        condition.lock()
        defer { condition.unlock() }
        while head == items.count && !aborted { condition.wait() }
        guard !aborted else { return nil }
        let item = items[head]
        head += 1
        if head > 1024 && head * 2 > items.count {
            items.removeFirst(head)
            head = 0
        }
        queuedBytes -= item.bytes?.count ?? 0
        condition.broadcast()
        return item
    }

    func abort() {
        condition.lock()
        aborted = true
        condition.broadcast()
        condition.unlock()
    }
}
