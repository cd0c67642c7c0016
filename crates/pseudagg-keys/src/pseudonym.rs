use std::fmt;

use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use pseudagg_core::Month;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::MasterKey;

/// Length of a pseudonym: 64 lower-case hex characters.
pub const PSEUDONYM_LEN: usize = 64;

/// The HKDF info string for a purpose and month: `pseudagg:v1:{purpose}:{YYYY-MM}`.
#[must_use]
pub fn period_key_info(purpose: &str, month: Month) -> String {
    format!("pseudagg:v1:{purpose}:{month}")
}

/// Computes pseudonyms for one purpose and month.
///
/// The HMAC is keyed once: the inner and outer SHA-256 states are computed here, and each pseudonym
/// clones them, so a short identifier costs two SHA-256 compressions. `Sync`, so rows can be spread
/// over threads.
#[derive(Clone)]
pub struct Pseudonymiser {
    mac: Hmac<Sha256>,
}

impl fmt::Debug for Pseudonymiser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pseudonymiser { <redacted> }")
    }
}

impl Pseudonymiser {
    /// Derives the period key for `purpose` and `month` and keys the HMAC with it.
    #[must_use]
    pub fn new(master: &MasterKey, purpose: &str, month: Month) -> Self {
        let hk = Hkdf::<Sha256>::new(None, master.bytes());
        let mut period = Zeroizing::new([0u8; 32]);
        hk.expand(
            period_key_info(purpose, month).as_bytes(),
            period.as_mut_slice(),
        )
        .expect("32 bytes is a valid HKDF-SHA256 output length");
        let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(period.as_slice())
            .expect("HMAC takes a key of any length");
        Self { mac }
    }

    /// Writes the pseudonym of `identifier` as lower-case hex into `out`.
    pub fn pseudonym_into(&self, identifier: &str, out: &mut [u8; PSEUDONYM_LEN]) {
        let id = identifier.trim();
        let mut mac = self.mac.clone();
        if id.is_ascii() {
            let mut buf = [0u8; 64];
            if id.len() <= buf.len() {
                let buf = &mut buf[..id.len()];
                buf.copy_from_slice(id.as_bytes());
                buf.make_ascii_uppercase();
                mac.update(buf);
            } else {
                mac.update(id.to_ascii_uppercase().as_bytes());
            }
        } else {
            mac.update(id.to_uppercase().as_bytes());
        }
        let digest = mac.finalize().into_bytes();
        hex::encode_to_slice(digest.as_slice(), out).expect("64 hex characters for 32 bytes");
    }

    /// The pseudonym of `identifier`.
    #[must_use]
    pub fn pseudonym(&self, identifier: &str) -> String {
        let mut out = [0u8; PSEUDONYM_LEN];
        self.pseudonym_into(identifier, &mut out);
        String::from_utf8(out.to_vec()).expect("hex is ASCII")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    fn hmac_hex(key: &[u8], data: &[u8]) -> String {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
        mac.update(data);
        hex::encode(mac.finalize().into_bytes())
    }

    /// RFC 4231, test cases 1, 2, 3, 4, 6 and 7 (HMAC-SHA-256).
    #[test]
    fn rfc4231_hmac_sha256() {
        let cases: &[(Vec<u8>, Vec<u8>, &str)] = &[
            (vec![0x0b; 20], b"Hi There".to_vec(),
             "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
            (b"Jefe".to_vec(), b"what do ya want for nothing?".to_vec(),
             "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
            (vec![0xaa; 20], vec![0xdd; 50],
             "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
            (unhex("0102030405060708090a0b0c0d0e0f10111213141516171819"), vec![0xcd; 50],
             "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
            (vec![0xaa; 131], b"Test Using Larger Than Block-Size Key - Hash Key First".to_vec(),
             "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
            (vec![0xaa; 131], b"This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.".to_vec(),
             "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
        ];
        for (i, (key, data, expected)) in cases.iter().enumerate() {
            assert_eq!(hmac_hex(key, data), *expected, "RFC 4231 case {}", i + 1);
        }
        // Case 5: output truncated to 128 bits.
        let t = hmac_hex(&[0x0c; 20], b"Test With Truncation");
        assert_eq!(&t[..32], "a3b6167473100ee06e0c796c2955552b");
    }

    /// (IKM, salt, info, length, OKM)
    type HkdfCase = (Vec<u8>, Vec<u8>, Vec<u8>, usize, &'static str);

    /// RFC 5869, test cases 1, 2 and 3 (HKDF-SHA-256).
    #[test]
    fn rfc5869_hkdf_sha256() {
        let long = |start: u8| {
            (0..80u8)
                .map(|i| start.wrapping_add(i))
                .collect::<Vec<u8>>()
        };
        let cases: Vec<HkdfCase> = vec![
            (
                vec![0x0b; 22],
                unhex("000102030405060708090a0b0c"),
                unhex("f0f1f2f3f4f5f6f7f8f9"),
                42,
                "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
            ),
            (
                long(0x00),
                long(0x60),
                long(0xb0),
                82,
                "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87",
            ),
            (
                vec![0x0b; 22],
                vec![],
                vec![],
                42,
                "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
            ),
        ];
        for (i, (ikm, salt, info, len, expected)) in cases.iter().enumerate() {
            let salt = if salt.is_empty() {
                None
            } else {
                Some(salt.as_slice())
            };
            let hk = Hkdf::<Sha256>::new(salt, ikm);
            let mut okm = vec![0u8; *len];
            hk.expand(info, &mut okm).unwrap();
            assert_eq!(hex::encode(okm), *expected, "RFC 5869 case {}", i + 1);
        }
    }

    /// Computed independently with Python's standard library (hashlib, hmac), see
    /// `testdata/vectors/pseudonym_vector.py`:
    /// key = bytes(range(32)), purpose `vkb`, month 2025-03, identifier `325D123456`.
    #[test]
    fn fixed_end_to_end_vector() {
        let key: [u8; 32] = std::array::from_fn(|i| i as u8);
        let key = MasterKey::from_bytes(key);
        let p = Pseudonymiser::new(&key, "vkb", "2025-03".parse().unwrap());
        assert_eq!(p.pseudonym("325D123456"), VECTOR_VKB_2025_03);
        // Normalisation: surrounding blanks and lower case give the same pseudonym.
        assert_eq!(p.pseudonym("  325d123456\t"), VECTOR_VKB_2025_03);
        assert_eq!(key.id().as_str(), VECTOR_KEY_ID);
        let april = Pseudonymiser::new(&key, "vkb", "2025-04".parse().unwrap());
        assert_eq!(april.pseudonym("325D123456"), VECTOR_VKB_2025_04);
        let other_purpose = Pseudonymiser::new(&key, "opds", "2025-03".parse().unwrap());
        assert_eq!(other_purpose.pseudonym("325D123456"), VECTOR_OPDS_2025_03);
    }

    const VECTOR_KEY_ID: &str = "630dcd2966c43366";
    const VECTOR_VKB_2025_03: &str =
        "78f0399c47c50cb7fe24900a9391b415a79563dd14e7aa7d46e30e178974358e";
    const VECTOR_VKB_2025_04: &str =
        "0e5105bc77e1ea3956b6b3fd5692fe5f6b2a41be7755be3b16283ad8acb41cc8";
    const VECTOR_OPDS_2025_03: &str =
        "41ff69e90998fb8118cb510e2ef2efa43ef9bb8b3a86b61b508bef494b62d26c";

    #[test]
    fn pseudonym_never_equals_input_and_is_lower_hex() {
        let p = Pseudonymiser::new(
            &MasterKey::from_bytes([1; 32]),
            "vkb",
            "2025-03".parse().unwrap(),
        );
        for id in ["325D123456", "", "x", &"A".repeat(100), "Äöü"] {
            let out = p.pseudonym(id);
            assert_ne!(out, id);
            assert_eq!(out.len(), 64);
            assert!(
                out.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            );
        }
        // Long identifiers take the slow path and still normalise.
        assert_eq!(p.pseudonym(&"a".repeat(100)), p.pseudonym(&"A".repeat(100)));
    }

    #[test]
    fn debug_is_redacted() {
        let p = Pseudonymiser::new(
            &MasterKey::from_bytes([1; 32]),
            "vkb",
            "2025-03".parse().unwrap(),
        );
        assert_eq!(format!("{p:?}"), "Pseudonymiser { <redacted> }");
    }
}
