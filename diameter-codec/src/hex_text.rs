//! Messages written as hex text, the way people paste them and the golden vectors store
//! them.

/// The bytes spelled by `text`: hex digits, with whitespace, `0x` prefixes and `#` comments
/// (to the end of the line) ignored. `None` unless what remains is a non-empty, even-length
/// run of hex digits.
///
/// ```
/// assert_eq!(diameter_codec::hex_text::parse("# CER\n01 00 0x00 14"), Some(vec![1, 0, 0, 0x14]));
/// assert_eq!(diameter_codec::hex_text::parse("01 0"), None);
/// ```
pub fn parse(text: &str) -> Option<Vec<u8>> {
    let mut digits = Vec::with_capacity(text.len());
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default();
        for word in line.split_whitespace() {
            digits.extend_from_slice(word.trim_start_matches("0x").as_bytes());
        }
    }
    if digits.is_empty() || digits.len() % 2 != 0 {
        return None;
    }
    let nibble = |c: u8| char::from(c).to_digit(16).map(|d| d as u8);
    digits
        .chunks_exact(2)
        .map(|p| Some((nibble(p[0])? << 4) | nibble(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn accepts_what_people_paste_and_refuses_the_rest() {
        assert_eq!(
            parse("0a0B\n  # note\n0xff 10 # trailing"),
            Some(vec![0x0a, 0x0b, 0xff, 0x10])
        );
        assert_eq!(parse(""), None);
        assert_eq!(parse("# only a comment"), None);
        assert_eq!(parse("abc"), None);
        assert_eq!(parse("zz"), None);
        assert_eq!(parse("\u{1}\u{2}"), None);
    }
}
