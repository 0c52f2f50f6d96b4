// SHA-256 moved to `ChorusCrypto` (the cluster key's HMAC needs it below `ChorusModel`); re-exported so
// code that hashes models and vocabularies through `import ChorusModel` reads as before.
@_exported import ChorusCrypto
