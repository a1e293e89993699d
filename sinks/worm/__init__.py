"""The tamper-evident license log: an RFC 6962 Merkle log of `LicenseIssued` events."""
