//! Bucketing: MurmurHash3 (x86, 32-bit) and the normalisation Unleash puts on top of it.
//!
//! A user lands in the same bucket in Ripcord as in every Unleash SDK only if both
//! hash the same bytes the same way, so this is the reference algorithm written out,
//! not a hash chosen for speed.

/// The seed Unleash uses when hashing for a rollout percentage.
pub const ROLLOUT_SEED: u32 = 0;

/// The seed Unleash uses when hashing for a variant. A different seed from rollouts
/// keeps the two independent: the users who got a flag first are not all given the
/// first variant.
pub const VARIANT_SEED: u32 = 86_028_157;

/// MurmurHash3, x86 32-bit variant, of `bytes` with `seed`.
pub fn murmur3_32(bytes: &[u8], seed: u32) -> u32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;

    let mix = |block: u32| block.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);

    let mut hash = seed;
    let mut blocks = bytes.chunks_exact(4);
    for block in blocks.by_ref() {
        let block = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        hash ^= mix(block);
        hash = hash
            .rotate_left(13)
            .wrapping_mul(5)
            .wrapping_add(0xe654_6b64);
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        let block = tail
            .iter()
            .rev()
            .fold(0u32, |block, &byte| (block << 8) | u32::from(byte));
        hash ^= mix(block);
    }

    // The length is mixed in modulo 2^32, as the reference implementation does.
    hash ^= bytes.len() as u32;
    hash ^= hash >> 16;
    hash = hash.wrapping_mul(0x85eb_ca6b);
    hash ^= hash >> 13;
    hash = hash.wrapping_mul(0xc2b2_ae35);
    hash ^= hash >> 16;
    hash
}

/// The bucket of `id` within `group_id`: a number from 1 to `modulus` (inclusive).
///
/// Unleash hashes the UTF-8 text `"{group_id}:{id}"`. With `modulus` 100 and
/// [`ROLLOUT_SEED`] the result is compared with a rollout percentage (a user is in
/// when the bucket is at most the percentage); with the total variant weight and
/// [`VARIANT_SEED`] it picks a variant.
///
/// # Panics
///
/// If `modulus` is 0; callers check that there is some weight to share first.
pub fn normalized_hash(group_id: &str, id: &str, modulus: u32, seed: u32) -> u32 {
    let key = format!("{group_id}:{id}");
    murmur3_32(key.as_bytes(), seed) % modulus + 1
}

/// The rollout bucket of `id` within `group_id`, from 1 to 100.
pub fn rollout_bucket(group_id: &str, id: &str) -> u32 {
    normalized_hash(group_id, id, 100, ROLLOUT_SEED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        // Published test vectors for MurmurHash3 x86_32, covering every tail length.
        let cases: &[(&[u8], u32, u32)] = &[
            (b"", 0, 0),
            (b"", 1, 0x514e_28b7),
            (b"", 0xffff_ffff, 0x81f1_6f39),
            (b"\0\0\0\0", 0, 0x2362_f9de),
            (b"a", 0, 0x3c25_69b2),
            (b"ab", 0, 0x9bbf_d75f),
            (b"abc", 0, 0xb3dd_93fa),
            (b"abcd", 0, 0x43ed_676a),
            (b"hello", 0, 0x248b_fa47),
            (b"Hello, world!", 1234, 0xfaf6_cdb3),
            (
                b"The quick brown fox jumps over the lazy dog",
                0,
                0x2e4f_f723,
            ),
            (
                b"The quick brown fox jumps over the lazy dog",
                0x9747_b28c,
                0x2fa8_26cd,
            ),
        ];
        for &(input, seed, expected) in cases {
            assert_eq!(
                murmur3_32(input, seed),
                expected,
                "murmur3_32({:?}, {seed:#x})",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn non_ascii_text_is_hashed_as_utf8() {
        // "ø" is two bytes in UTF-8; hashing them must equal hashing the text.
        let text = "Hellø";
        assert_eq!(
            murmur3_32(text.as_bytes(), 0),
            murmur3_32(&[72, 101, 108, 108, 0xc3, 0xb8], 0)
        );
        assert_ne!(murmur3_32(text.as_bytes(), 0), murmur3_32(b"Hello", 0));
    }

    #[test]
    fn normalisation_stays_in_range() {
        for modulus in [1, 2, 3, 100, 1000] {
            for id in 0..2000 {
                let bucket = normalized_hash("group", &id.to_string(), modulus, ROLLOUT_SEED);
                assert!(
                    (1..=modulus).contains(&bucket),
                    "{bucket} is outside 1..={modulus}"
                );
            }
        }
    }

    #[test]
    fn normalisation_matches_unleash_buckets() {
        // Buckets that Unleash's own specification relies on (03 and 10 of its client
        // specification): user 122 is in at 50% and user 155 is not, in group AB12A.
        assert!(rollout_bucket("AB12A", "122") <= 50);
        assert!(rollout_bucket("AB12A", "155") > 50);
        assert!(rollout_bucket("Feature.flexibleRollout.10", "174") <= 10);
        assert!(rollout_bucket("Feature.flexibleRollout.10", "499") > 10);
        // The key is "group:id": the same pieces joined otherwise give another bucket.
        let joined = murmur3_32(b"AB12A:122", ROLLOUT_SEED) % 100 + 1;
        assert_eq!(rollout_bucket("AB12A", "122"), joined);
    }

    #[test]
    fn rollout_and_variant_seeds_differ() {
        let spread = (0..100)
            .filter(|id| {
                let id = id.to_string();
                normalized_hash("g", &id, 100, ROLLOUT_SEED)
                    != normalized_hash("g", &id, 100, VARIANT_SEED)
            })
            .count();
        assert!(spread > 90, "only {spread} of 100 ids hash differently");
    }

    #[test]
    fn buckets_are_roughly_uniform() {
        let mut counts = [0u32; 100];
        for id in 0..100_000 {
            counts[(rollout_bucket("uniform", &id.to_string()) - 1) as usize] += 1;
        }
        // 1,000 expected per bucket; 5 standard deviations is about 160.
        for (bucket, count) in counts.iter().enumerate() {
            assert!(
                (840..=1160).contains(count),
                "bucket {} holds {count} of 100,000 ids",
                bucket + 1
            );
        }
    }
}
