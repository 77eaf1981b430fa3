//! Phone numbers: normalisation to E.164 (`+` and 8–15 digits), the form every
//! number is stored, indexed and compared in.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not a phone number in E.164 (+ and 8 to 15 digits): {reason}")]
pub struct NumberError {
    pub input: String,
    pub reason: &'static str,
}

/// Normalises `+1 (800) 555-0100`, `18005550100` or `8005550100` to
/// `+18005550100`. Ten digits without a country code are taken as North
/// American (the market pay-per-call runs in); anything else needs the `+`.
pub fn normalize_e164(input: &str) -> Result<String, NumberError> {
    let error = |reason| NumberError {
        input: input.chars().take(40).collect(),
        reason,
    };
    let trimmed = input.trim();
    let (plus, rest) = match trimmed.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, trimmed),
    };
    let mut digits = String::with_capacity(16);
    for c in rest.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => {
                return Err(error(
                    "only digits, spaces, dashes, dots and parentheses are allowed",
                ));
            }
        }
    }
    let e164 = match (plus, digits.len()) {
        (true, 8..=15) => digits,
        (true, _) => return Err(error("E.164 numbers have 8 to 15 digits")),
        (false, 10) => format!("1{digits}"),
        (false, 11) if digits.starts_with('1') => digits,
        (false, _) => {
            return Err(error(
                "without `+`, only 10- or 11-digit North American numbers",
            ));
        }
    };
    if e164.starts_with('0') {
        return Err(error("country codes do not start with 0"));
    }
    Ok(format!("+{e164}"))
}

#[cfg(test)]
mod tests {
    use super::normalize_e164;

    #[test]
    fn north_american_forms_normalise_to_the_same_number() {
        for input in [
            "+18005550100",
            "18005550100",
            "8005550100",
            "+1 (800) 555-0100",
            " 1.800.555.0100 ",
        ] {
            assert_eq!(
                normalize_e164(input).as_deref(),
                Ok("+18005550100"),
                "{input}"
            );
        }
    }

    #[test]
    fn international_numbers_need_the_plus() {
        assert_eq!(
            normalize_e164("+442071838750").as_deref(),
            Ok("+442071838750")
        );
        assert!(normalize_e164("442071838750").is_err());
    }

    #[test]
    fn junk_is_refused() {
        for input in [
            "",
            "+",
            "+123",
            "abc",
            "+1800555010x",
            "+0123456789",
            "+1234567890123456",
        ] {
            assert!(normalize_e164(input).is_err(), "{input}");
        }
    }
}
