// SHA-256 moved to `ChorusCrypto` (the cluster key's HMAC needs it below `ChorusModel`); re-exported so
// code that hashes models and vocabularies through `import ChorusModel` reads as before.
@_exported import ChorusCrypto

// `ModelIdentity` moved to `ChorusSampling` (one type from the model through a worker's registration on the wire to
// the coordinator's vocabulary check); re-exported so code that names it through `import ChorusModel` reads as before.
@_exported import struct ChorusSampling.ModelIdentity
