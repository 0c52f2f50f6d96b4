import ChorusTestSupport
import ChorusTransport
import Synchronization
import Testing

/// The cluster key's envelope (`MessageAuthenticator`): what a server without the key's holder
/// behind it must refuse, and what a client must never take as an answer. The happy path is the
/// whole `DraftTransport` contract, run with a key in `TransportContractTests`.
@Suite("Message authentication", .timeLimit(.minutes(1)))
struct AuthenticationTests {
    /// Failures a guarded server reported, in order.
    final class Rejections: Sendable {
        private let list = Mutex<[AuthenticationFailure]>([])
        func add(_ failure: AuthenticationFailure) { list.withLock { $0.append(failure) } }
        var all: [AuthenticationFailure] { list.withLock { $0 } }
    }

    final class Counter: Sendable {
        private let value = Mutex(0)
        func increment() { value.withLock { $0 += 1 } }
        var count: Int { value.withLock { $0 } }
    }

    /// A keyed echo worker on an in-process network, counting the requests that reach its handler.
    struct GuardedWorker {
        let network = InProcessNetwork()
        let server: InProcessServer
        let authenticator: MessageAuthenticator
        let rejections = Rejections()
        let handled = Counter()

        init(
            authenticator: MessageAuthenticator = testAuthenticator(),
            wrap: (@escaping RequestHandler) -> RequestHandler = { $0 }
        ) throws {
            self.authenticator = authenticator
            let rejections = self.rejections
            let handled = self.handled
            let guarded = authenticator.guarding({ request in
                handled.increment()
                return Array("re:") + request.body
            }) { failure, _ in
                rejections.add(failure)
                return nil
            }
            server = try network.listen(on: "inproc://guarded", handler: wrap(guarded))
        }

        var handledCount: Int { handled.count }

        /// A client with the key `fill` (the worker's key is 0x42).
        func client(key fill: UInt8 = 0x42) throws -> any DraftTransport {
            try testAuthenticator(fill).connector(wrapping: network).connect(to: server.address)
        }
    }

    @Test func theRightKeyRoundTrips() async throws {
        let worker = try GuardedWorker()
        let reply = try await worker.client().request([7, 8], timeout: .seconds(5))
        #expect(reply == Array("re:") + [7, 8])
        #expect(worker.rejections.all.isEmpty)
    }

    /// A client with another key: its request never reaches the handler and gets no answer (a miss at
    /// the deadline); the server reports a bad tag and keeps serving the right key.
    @Test func wrongKeyIsDroppedAndTheServerKeepsServing() async throws {
        let worker = try GuardedWorker()
        let wrong = await outcome(try worker.client(key: 0x43), [1], timeout: .milliseconds(200))
        #expect(wrong == .failure(.timedOut(after: .milliseconds(200))))
        #expect(worker.handledCount == 0)
        #expect(worker.rejections.all == [.badTag])
        #expect(worker.authenticator.counts.rejectedRequests == 1)
        let right = try await worker.client().request([2], timeout: .seconds(5))
        #expect(right == Array("re:") + [2])
        #expect(worker.handledCount == 1)
    }

    /// A peer without a key sends plain bytes: dropped as `notAuthenticated`.
    @Test func plainRequestIsDropped() async throws {
        let worker = try GuardedWorker()
        let plain = worker.network.client(for: worker.server.address)
        let result = await outcome(plain, Array("CHRS plain message"), timeout: .milliseconds(200))
        #expect(result == .failure(.timedOut(after: .milliseconds(200))))
        #expect(worker.rejections.all == [.notAuthenticated])
        #expect(worker.handledCount == 0)
    }

    /// A keyed client talking to a server without the key gets plain bytes back: refused as such.
    @Test func plainReplyIsRefused() async throws {
        let network = InProcessNetwork()
        let server = try network.listen(on: "inproc://plain") { _ in Array("CHRS plain reply") }
        defer { server.close() }
        let authenticator = testAuthenticator()
        let client = try authenticator.connector(wrapping: network).connect(to: server.address)
        let result = await outcome(client, [1], timeout: .seconds(5))
        #expect(result == .failure(.unauthenticated(.notAuthenticated)))
        #expect(authenticator.counts.rejectedReplies == 1)
    }

    /// Every single-bit change of a sealed request is refused (bad tag, or a broken envelope).
    @Test func anyFlippedBitOfARequestIsRefused() {
        let authenticator = testAuthenticator()
        let (sealed, _) = authenticator.sealRequest(Array("session 7 round 3"))
        for index in sealed.indices {
            var tampered = sealed
            tampered[index] ^= 0x01
            guard case .failure = authenticator.openRequest(tampered) else {
                Issue.record("byte \(index) flipped was accepted")
                return
            }
        }
        #expect(authenticator.rememberedNonces == 0)
    }

    /// A reply recorded earlier, sent again to answer a later request (another round), is refused: its
    /// tag is bound to the first request's nonce. The worker did answer the second request; a
    /// man-in-the-middle swapped the answer.
    @Test func replayedReplyIsRefused() async throws {
        let recorded = Mutex<[UInt8]?>(nil)
        let worker = try GuardedWorker { guarded in
            { request in
                let fresh = await guarded(request)
                return recorded.withLock { first in
                    if first == nil { first = fresh }
                    return first
                }
            }
        }
        let client = try worker.client()
        #expect(try await client.request(Array("round 1"), timeout: .seconds(5)) == Array("re:round 1"))
        let second = await outcome(client, Array("round 2"), timeout: .seconds(5))
        #expect(second == .failure(.unauthenticated(.badTag)))
        #expect(worker.handledCount == 2)
    }

    /// A reply whose body was altered (say, a drafted token's claimed probability) is refused.
    @Test func alteredReplyIsRefused() async throws {
        let worker = try GuardedWorker { guarded in
            { request in
                guard var reply = await guarded(request) else { return nil }
                reply[8] ^= 0x20
                return reply
            }
        }
        let result = await outcome(try worker.client(), Array("round 1"), timeout: .seconds(5))
        #expect(result == .failure(.unauthenticated(.badTag)))
    }

    /// The same sealed request sent twice: answered once, then dropped as a replay.
    @Test func replayedRequestIsDropped() async throws {
        let worker = try GuardedWorker()
        let bare = worker.network.client(for: worker.server.address)
        let sender = testAuthenticator()
        let (sealed, nonce) = sender.sealRequest(Array("draft please"))
        let first = try await bare.request(sealed, timeout: .seconds(5))
        #expect(try sender.openReply(first, to: nonce).get() == Array("re:draft please"))
        let again = await outcome(bare, sealed, timeout: .milliseconds(200))
        #expect(again == .failure(.timedOut(after: .milliseconds(200))))
        #expect(worker.rejections.all == [.replayed])
        #expect(worker.handledCount == 1)
    }

    /// A request sent two minutes ago (or by a host whose clock is two minutes off) is refused; within
    /// the 60 s window it is taken.
    @Test func staleRequestIsRefused() {
        let now: Int64 = 1_800_000_000_000
        let server = testAuthenticator(wallClock: { now })
        let old = testAuthenticator(wallClock: { now - 120_000 }).sealRequest([1]).message
        #expect(
            server.openRequest(old).map(\.body)
                == .failure(.stale(skewMilliseconds: 120_000, allowedMilliseconds: 60_000))
        )
        let slightlyAhead = testAuthenticator(wallClock: { now + 59_000 }).sealRequest([2]).message
        #expect(server.openRequest(slightlyAhead).map(\.body) == .success([2]))
    }

    /// A request cannot pose as a reply (the kind byte is under the tag), nor a reply as a request.
    @Test func requestAndReplyCannotBeSwapped() {
        let authenticator = testAuthenticator()
        let (request, nonce) = authenticator.sealRequest([1, 2, 3])
        guard case .failure(.malformedEnvelope) = authenticator.openReply(request, to: nonce) else {
            Issue.record("a request was taken as a reply")
            return
        }
        let reply = authenticator.sealReply([4], to: nonce)
        guard case .failure = authenticator.openRequest(reply) else {
            Issue.record("a reply was taken as a request")
            return
        }
        #expect(authenticator.openReply(Array(reply.prefix(20)), to: nonce).map { $0 } != .success([4]))
    }

    /// Nonces are remembered only while their request could still pass the time check, and never more
    /// than the capacity (beyond it requests are refused, not forgotten).
    @Test func replayMemoryIsBounded() {
        let now = Mutex<Int64>(1_000_000)
        let server = MessageAuthenticator(key: testKey(), replayCapacity: 3, wallClock: { now.withLock { $0 } })
        let sender = MessageAuthenticator(key: testKey(), wallClock: { now.withLock { $0 } })
        for i in 0..<3 {
            #expect(server.openRequest(sender.sealRequest([UInt8(i)]).message).map(\.body) == .success([UInt8(i)]))
        }
        #expect(server.openRequest(sender.sealRequest([9]).message).map(\.body) == .failure(.replayCacheFull(3)))
        // 60 s later the first three are past their window: forgotten, and room again.
        now.withLock { $0 += 60_001 }
        #expect(server.openRequest(sender.sealRequest([10]).message).map(\.body) == .success([10]))
        #expect(server.rememberedNonces == 1)
    }

    /// Keys shorter than 32 bytes are refused; the description never shows the key.
    @Test func keys() throws {
        #expect(throws: TransportError.self) { try PresharedKey(bytes: [UInt8](repeating: 1, count: 31)) }
        let key = testKey(0xAB)
        #expect(!"\(key)".lowercased().contains("abab"))
        #expect(key.fingerprint.count == 16)
        #expect(key.fingerprint != testKey(0xAC).fingerprint)
    }

    @Test(arguments: [
        ("tcp://127.0.0.1:7100", true), ("tcp://127.9.8.7:1", true), ("tcp://localhost:7100", true),
        ("tcp://LOCALHOST:7100", true), ("tcp://[::1]:7100", true), ("tls+tcp://127.0.0.1:7100", true),
        ("inproc://w0", true), ("ipc:///tmp/chorus.sock", true), ("tcp://0.0.0.0:7100", false),
        ("tcp://:7100", false), ("tcp://[::]:7100", false), ("tcp://10.0.0.5:7101", false),
        ("tcp://128.0.0.1:7101", false), ("tcp://127.0.0.1.example.com:7101", false),
        ("tcp://worker1:7101", false), ("tcp://localhost.evil.example:7101", false),
    ])
    func localAddresses(_ url: String, _ local: Bool) throws {
        #expect(try TransportAddress(url).isLocal == local, "\(url)")
    }
}
