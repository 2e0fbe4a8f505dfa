// Package batch is the codec for Vault-style batch tokens ("hvb." tokens).
//
// A batch token is never stored anywhere: the token string itself carries
// the whole token entry (policies, meta, display name, creation path, role,
// parent, creation time, TTL, entity ID, bound CIDRs), encrypted and
// authenticated under a cluster key. Any node that holds the keyring can
// validate and look one up without a write and without storage.
//
// What it owns: the Entry type, the binary encoding of an entry, and
// Seal/Open. What it must not import: anything of tokend's, and anything
// beyond the standard library (the keyring is passed in as plain values, as
// fsm.Reader.BatchKeys exposes it). It never logs.
//
// # Format (version 1)
//
//	token     = "hvb." base64url-nopad(blob)
//	blob      = version(1 byte, = 1) || keyID(4 bytes, big endian) || nonce(12 bytes)
//	            || AES-256-GCM-Seal(key[keyID], nonce, plaintext, ad)
//	ad        = "hvb." || version || keyID
//	plaintext = varint(creation_time) varint(ttl)
//	            str(display_name) str(path) str(role) parent str(entity_id)
//	            list(policies) map(meta) list(bound_cidrs)
//	str       = uvarint(len) bytes;  list = uvarint(n) str*n
//	map       = uvarint(n) (str key, str value)*n   keys strictly ascending
//	parent    = 0x00 (orphan) | 0x20 followed by the 32 raw bytes of the hash
//
// varint is Go's zig-zag signed varint (encoding/binary). The plaintext
// encoding is canonical: Open rejects trailing bytes, unsorted or duplicate
// meta keys and malformed parents, so one entry has exactly one plaintext.
// A token from auth/token/create with two policies and no meta is 114
// characters for an orphan and 156 with a parent (the raw parent hash is 32
// bytes); see TestTokenLength. Vault's are 139 for a small entry, and its
// docs tell clients to allow 255. Seal refuses entries that would exceed
// MaxTokenLen (ErrTooLarge), Open refuses longer strings outright.
//
// # Threat model
//
//   - Confidentiality and integrity of the entry rest on the cluster
//     keyring (replicated through raft, in the fsm's state and snapshots).
//     Whoever holds a key can read and forge tokens for that key; whoever
//     does not learns nothing from a token beyond its length and key ID, and
//     cannot alter a single bit of it: the AEAD authenticates the ciphertext
//     and the header (prefix, version and key ID are the additional data).
//   - Open reports every failure — wrong prefix, bad characters or base64,
//     too short or too long, unknown version or key ID, authentication
//     failure, malformed plaintext — as the single sentinel ErrInvalid, so
//     its answer is no oracle. (It does not run in constant time with
//     respect to the token's structure; only the tag comparison is constant
//     time, which is what matters for forgery.)
//   - Nonces are 96 random bits per token. The AES-GCM bound for random
//     nonces is 2^32 tokens per key, so a cluster creating batch tokens at a
//     sustained high rate should rotate its key well before that (at 10,000
//     tokens/s that is about five days).
//   - There is no revocation of an individual batch token. A batch token
//     stops validating when (a) its TTL ends (ExpiredAt), (b) its parent
//     service token is revoked or expires — the caller must look
//     Entry.ParentHash up in the store on every use; this package cannot —
//     or (c) the key it was sealed with is removed from the keyring.
//   - Replay is not prevented: a batch token is a bearer token, valid for
//     anyone who holds it until one of (a)–(c) happens.
//
// # Key rotation
//
// Seal always uses the key the caller passes (the keyring's primary).
// Open looks the key up by the ID in the token, so after a rotation tokens
// sealed with older keys keep validating as long as their key stays in the
// keyring; removing a key (fsm PruneBatchKeys, once every token sealed with
// it has expired) invalidates every token it sealed, at once and on every
// node. Key ID 0 is reserved (the fsm's "no key") and Seal refuses it.
//
// # Performance
//
// Expanding an AES-256-GCM key costs more than sealing or opening a token,
// so the package keeps the expanded state of the keys it has used in a
// small process-wide cache: keyed by key ID, checked against the key
// material on every call (a reused ID with new material is never served
// the old state), and swept by Open of every key no longer in the keyring
// it is given, so a key pruned from the keyring leaves memory with it.
// Readers take no lock. Run BenchmarkSeal and BenchmarkOpen (and their
// Parallel variants) for ns/op.
package batch
