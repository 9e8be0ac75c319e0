//! Checksums and range checks that turn a regex candidate into a finding, so that ordinary
//! numbers (ids, order numbers, timestamps) are not flagged.

/// Luhn (mod 10) over ASCII digits; other bytes are ignored.
pub(crate) fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    let mut double = false;
    for &d in digits.iter().rev() {
        if !d.is_ascii_digit() {
            continue;
        }
        let mut v = u32::from(d - b'0');
        if double {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
        double = !double;
    }
    sum.is_multiple_of(10)
}

fn prefix_num(d: &[u8], n: usize) -> u32 {
    d.iter().take(n).fold(0u32, |acc, &b| acc * 10 + u32::from(b.wrapping_sub(b'0')))
}

/// A payment card number: 12–19 digits (given without separators), a known IIN range with a
/// length that range issues, and Luhn.
pub(crate) fn card_number(d: &[u8]) -> bool {
    let len = d.len();
    if !(12..=19).contains(&len) || !d.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let p1 = prefix_num(d, 1);
    let p2 = prefix_num(d, 2);
    let p3 = prefix_num(d, 3);
    let p4 = prefix_num(d, 4);
    let p6 = prefix_num(d, 6);
    let range_ok = match p1 {
        // Visa
        4 => matches!(len, 13 | 16 | 19),
        // Mastercard 51–55, Maestro 50, 56–58
        5 => ((51..=55).contains(&p2) && len == 16) || (matches!(p2, 50 | 56..=58) && (12..=19).contains(&len)),
        // Mastercard 2221–2720, Mir 2200–2204
        2 => ((2221..=2720).contains(&p4) && len == 16) || ((2200..=2204).contains(&p4) && (16..=19).contains(&len)),
        // Amex 34/37; Diners 300–305, 36, 38, 39; JCB 3528–3589
        3 => {
            (matches!(p2, 34 | 37) && len == 15)
                || (((300..=305).contains(&p3) || matches!(p2, 36 | 38 | 39)) && (14..=19).contains(&len))
                || ((3528..=3589).contains(&p4) && (16..=19).contains(&len))
        }
        // Discover 6011, 644–649, 65, 622126–622925; UnionPay 62; Maestro 6x
        6 => {
            (p4 == 6011 || (644..=649).contains(&p3) || p2 == 65 || (622_126..=622_925).contains(&p6))
                && (16..=19).contains(&len)
                || (p2 == 62 && (16..=19).contains(&len))
                || (matches!(p4, 6304 | 6759 | 6761 | 6762 | 6763) && (12..=19).contains(&len))
        }
        // UnionPay 81
        8 => p2 == 81 && (16..=19).contains(&len),
        _ => false,
    };
    range_ok && luhn(d)
}

/// IBAN lengths by country (SWIFT IBAN registry).
const IBAN_LENGTHS: &[(&[u8; 2], usize)] = &[
    (b"AD", 24),
    (b"AE", 23),
    (b"AL", 28),
    (b"AT", 20),
    (b"AZ", 28),
    (b"BA", 20),
    (b"BE", 16),
    (b"BG", 22),
    (b"BH", 22),
    (b"BI", 27),
    (b"BR", 29),
    (b"BY", 28),
    (b"CH", 21),
    (b"CR", 22),
    (b"CY", 28),
    (b"CZ", 24),
    (b"DE", 22),
    (b"DJ", 27),
    (b"DK", 18),
    (b"DO", 28),
    (b"EE", 20),
    (b"EG", 29),
    (b"ES", 24),
    (b"FI", 18),
    (b"FK", 18),
    (b"FO", 18),
    (b"FR", 27),
    (b"GB", 22),
    (b"GE", 22),
    (b"GI", 23),
    (b"GL", 18),
    (b"GR", 27),
    (b"GT", 28),
    (b"HN", 28),
    (b"HR", 21),
    (b"HU", 28),
    (b"IE", 22),
    (b"IL", 23),
    (b"IQ", 23),
    (b"IS", 26),
    (b"IT", 27),
    (b"JO", 30),
    (b"KW", 30),
    (b"KZ", 20),
    (b"LB", 28),
    (b"LC", 32),
    (b"LI", 21),
    (b"LT", 20),
    (b"LU", 20),
    (b"LV", 21),
    (b"LY", 25),
    (b"MC", 27),
    (b"MD", 24),
    (b"ME", 22),
    (b"MK", 19),
    (b"MN", 20),
    (b"MR", 27),
    (b"MT", 31),
    (b"MU", 30),
    (b"NI", 28),
    (b"NL", 18),
    (b"NO", 15),
    (b"OM", 23),
    (b"PK", 24),
    (b"PL", 28),
    (b"PS", 29),
    (b"PT", 25),
    (b"QA", 29),
    (b"RO", 24),
    (b"RS", 22),
    (b"RU", 33),
    (b"SA", 24),
    (b"SC", 31),
    (b"SD", 18),
    (b"SE", 24),
    (b"SI", 19),
    (b"SK", 24),
    (b"SM", 27),
    (b"SO", 23),
    (b"ST", 25),
    (b"SV", 28),
    (b"TL", 23),
    (b"TN", 24),
    (b"TR", 26),
    (b"UA", 29),
    (b"VA", 22),
    (b"VG", 24),
    (b"XK", 20),
    (b"YE", 30),
];

/// The IBAN length for a country code (uppercase), if the country issues IBANs.
pub(crate) fn iban_length(cc: &[u8]) -> Option<usize> {
    IBAN_LENGTHS.iter().find(|(c, _)| c.as_slice() == cc).map(|&(_, l)| l)
}

/// An IBAN given as uppercase alphanumerics without spaces: country length and mod 97 == 1.
pub(crate) fn iban(s: &[u8]) -> bool {
    let Some(cc) = s.get(..2) else { return false };
    if iban_length(cc) != Some(s.len()) || !s.iter().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()) {
        return false;
    }
    if !s[2..4].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let mut rem = 0u32;
    for &b in s[4..].iter().chain(&s[..4]) {
        if b.is_ascii_digit() {
            rem = (rem * 10 + u32::from(b - b'0')) % 97;
        } else {
            let v = u32::from(b - b'A') + 10;
            rem = (rem * 100 + v) % 97;
        }
    }
    rem == 1
}

/// A US SSN given as its nine digits: area 001–899 but not 666, group 01–99, serial 0001–9999, and
/// not one of the numbers known to have been published (and so never valid).
pub(crate) fn ssn(d: &[u8]) -> bool {
    if d.len() != 9 || !d.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let area = prefix_num(d, 3);
    let group = prefix_num(&d[3..], 2);
    let serial = prefix_num(&d[5..], 4);
    if area == 0 || area == 666 || area >= 900 || group == 0 || serial == 0 {
        return false;
    }
    // Woolworth's wallet card and the 1962 Social Security Board pamphlet.
    !matches!(d, b"078051120" | b"219099999")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_accepts_test_cards_and_rejects_off_by_one() {
        assert!(luhn(b"4242424242424242"));
        assert!(!luhn(b"4242424242424241"));
    }

    #[test]
    fn card_ranges() {
        for ok in [
            "4242424242424242",
            "4000056655665556",
            "5555555555554444",
            "2223003122003222",
            "378282246310005",
            "371449635398431",
            "6011111111111117",
            "6011000990139424",
            "3056930009020004",
            "36227206271667",
            "3566002020360505",
            "6200000000000005",
            "4222222222222",
        ] {
            assert!(card_number(ok.as_bytes()), "{ok}");
        }
        // Luhn-valid but not an issued range / length, and Luhn-invalid.
        for bad in ["1234567812345670", "9999999999999995", "0000000000000000", "4242424242424241", "378282246310006"] {
            assert!(!card_number(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn iban_checksums_and_lengths() {
        for ok in
            ["DE89370400440532013000", "GB82WEST12345698765432", "FR1420041010050500013M02606", "NL91ABNA0417164300"]
        {
            assert!(iban(ok.as_bytes()), "{ok}");
        }
        for bad in
            ["DE89370400440532013001", "GB82WEST1234569876543", "XX89370400440532013000", "DE8937040044053201300"]
        {
            assert!(!iban(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn ssn_invalid_ranges() {
        assert!(ssn(b"123456789"));
        assert!(ssn(b"536226789"));
        for bad in
            [&b"000123456"[..], b"666123456", b"900123456", b"123006789", b"123450000", b"078051120", b"12345678"]
        {
            assert!(!ssn(bad));
        }
    }
}
