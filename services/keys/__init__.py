"""The content key hierarchy: region KEKs wrap epoch master keys; content keys derive from them.

`KeyStore` (keystore.py) is what a service holds: it follows `keys.epochs`, unwraps its own
region's copy of each epoch master key and answers `content_key(content_id, period)`.
`derivation` and `schedule` are pure and hold the interoperable parts: the HKDF labels and
the period arithmetic.
"""
