import Synchronization

/// A small process-wide pool of large scratch blocks, so that per-position work at vocabulary scale
/// (tables of 32 000–150 000 entries) reuses memory instead of mapping fresh pages every time
/// (large `malloc`s are `mmap`s, and their page faults cost as much as the work itself).
///
/// Blocks are 64-byte aligned and bucketed by power-of-two size; at most `perBucket` idle blocks
/// per size are kept (a few MB for a 32 000-token vocabulary, ≈ 64 MB at 150 000).
enum ScratchPool {
    static let perBucket = 4
    /// Idle blocks by bucket size, stored as addresses (raw pointers are not Sendable).
    private static let idle = Mutex<[Int: [UInt]]>([:])

    /// Bucket size for a request of `bytes` (a power of two, at least 4 KiB).
    static func bucket(_ bytes: Int) -> Int {
        var size = 4096
        while size < bytes { size <<= 1 }
        return size
    }

    /// A block of at least `bytes` bytes (uninitialised); give it back with ``give(_:bytes:)``.
    static func take(bytes: Int) -> UnsafeMutableRawPointer {
        let size = bucket(bytes)
        if let address = idle.withLock({ $0[size]?.popLast() }),
            let block = UnsafeMutableRawPointer(bitPattern: address)
        {
            return block
        }
        return UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
    }

    static func give(_ block: UnsafeMutableRawPointer, bytes: Int) {
        let size = bucket(bytes)
        let address = UInt(bitPattern: block)
        let kept = idle.withLock { pool -> Bool in
            if pool[size, default: []].count >= perBucket { return false }
            pool[size, default: []].append(address)
            return true
        }
        if !kept { block.deallocate() }
    }
}

/// Carves typed arrays out of one scratch block, each 64-byte aligned.
struct ScratchLayout {
    private(set) var bytes = 0

    /// Reserves `count` values of `T`; returns the byte offset.
    mutating func reserve<T>(_: T.Type, _ count: Int) -> Int {
        let offset = (bytes + 63) & ~63
        bytes = offset + max(count, 1) * MemoryLayout<T>.stride
        return offset
    }
}

/// A typed pointer at `offset` bytes into `base`.
@inline(__always)
func carve<T>(_ base: UnsafeMutableRawPointer, _ offset: Int, _: T.Type) -> UnsafeMutablePointer<T> {
    (base + offset).bindMemory(to: T.self, capacity: 1)
}
