//! Strict base64url without padding (RFC 7515 §2): only `A–Z a–z 0–9 - _`, no `=`, no
//! whitespace, and the unused low bits of the last character must be zero, so every byte string
//! has exactly one accepted encoding (a token cannot be altered without changing its bytes).

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const INVALID: u8 = 0xff;

const DECODE: [u8; 256] = {
    let mut table = [INVALID; 256];
    let mut i = 0;
    while i < 64 {
        table[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    table
};

/// Encodes `bytes` as base64url without padding.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// Decodes strict base64url without padding; `None` on any character outside the alphabet,
/// an impossible length, or non-zero trailing bits.
pub fn decode(text: &[u8]) -> Option<Vec<u8>> {
    if text.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() / 4 * 3 + 2);
    for chunk in text.chunks(4) {
        let mut n: u32 = 0;
        for (i, &c) in chunk.iter().enumerate() {
            let v = DECODE[usize::from(c)];
            if v == INVALID {
                return None;
            }
            n |= u32::from(v) << (18 - 6 * i);
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        let produced = chunk.len() - 1;
        // Bits past the last produced byte must be zero (canonical encoding).
        if produced < 3 && bytes[produced..].iter().any(|&b| b != 0) {
            return None;
        }
        out.extend_from_slice(&bytes[..produced]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_length() {
        for len in 0..70u8 {
            let data: Vec<u8> = (0..len).map(|i| i.wrapping_mul(37).wrapping_add(len)).collect();
            let text = encode(&data);
            assert!(!text.contains('='));
            assert_eq!(decode(text.as_bytes()).unwrap(), data, "len {len}");
        }
        assert_eq!(encode(b"foo"), "Zm9v");
        assert_eq!(encode(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn rejects_padding_bad_characters_lengths_and_trailing_bits() {
        assert_eq!(decode(b"Zm9v"), Some(b"foo".to_vec()));
        for bad in [&b"Zm9v="[..], b"Zm8=", b"Zm+v", b"Zm/v", b"Zm 9v", b"Z", b"Zm9vZ", b"?Zm9", b"Zm9v\n"] {
            assert_eq!(decode(bad), None, "{}", String::from_utf8_lossy(bad));
        }
        // "AB" carries one byte (0x00) and four trailing bits; "AA" is the canonical form.
        assert_eq!(decode(b"AA"), Some(vec![0]));
        assert_eq!(decode(b"AB"), None);
        assert_eq!(decode(b"AAB"), None);
        assert_eq!(decode(b""), Some(vec![]));
    }
}
