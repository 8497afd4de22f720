//! Mirror's client order id in a form that fits a MetaTrader order comment.
//!
//! `ClientOrderId`'s own text (`m<hex>.<hex>.<n>`) can reach 32 characters, one more than an
//! MT4 comment holds (MT5 keeps 31 too), and a truncated id would no longer be unique. The
//! compact form writes the same three numbers in base 36 (upper case): `M<signal>.<account>.
//! <leg>`, at most 1 + 13 + 1 + 7 + 1 + 4 = 27 characters, and typically 21 (a signal id is a
//! microsecond timestamp, 10 base-36 digits). It parses back exactly, case-insensitively (some
//! servers change the case of comments), and the EA never needs to parse it: it only stores
//! the text as the comment and compares it.
//!
//! The comment is not the only record: MT4 replaces a partially closed order's comment with
//! `from #<ticket>` and brokers may rewrite comments (`[sl]`, `[tp]`), so the EA also keeps a
//! journal of executed commands by this id (see the README), and the bridge remembers which
//! position each id opened.

use mirror_model::{AccountId, ClientOrderId, SignalId};

const DIGITS: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// Longest compact id.
pub(crate) const CID_LEN_MAX: usize = 27;

fn push_base36(out: &mut String, mut value: u64) {
    let mut digits = [0u8; 13];
    let mut len = 0;
    loop {
        // `value % 36` is below 36, so the index and the narrowing are in range.
        digits[len] = DIGITS[usize::try_from(value % 36).unwrap_or(0)];
        len += 1;
        value /= 36;
        if value == 0 {
            break;
        }
    }
    out.extend(digits[..len].iter().rev().map(|d| char::from(*d)));
}

fn parse_base36(text: &str, max_len: usize) -> Option<u64> {
    if text.is_empty() || text.len() > max_len {
        return None;
    }
    text.chars().try_fold(0u64, |value, c| value.checked_mul(36)?.checked_add(u64::from(c.to_digit(36)?)))
}

/// The compact text of `id`.
pub(crate) fn encode(id: ClientOrderId) -> String {
    let mut out = String::with_capacity(CID_LEN_MAX);
    out.push('M');
    push_base36(&mut out, id.signal.0);
    out.push('.');
    push_base36(&mut out, u64::from(id.account.0));
    out.push('.');
    push_base36(&mut out, u64::from(id.leg));
    out
}

/// The id a comment carries, if it is exactly a compact id (surrounding spaces allowed).
pub(crate) fn decode(comment: &str) -> Option<ClientOrderId> {
    let body = comment.trim();
    let body = body.strip_prefix('M').or_else(|| body.strip_prefix('m'))?;
    let mut parts = body.split('.');
    let (Some(signal), Some(account), Some(leg), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    Some(ClientOrderId::new(
        SignalId(parse_base36(signal, 13)?),
        AccountId(u32::try_from(parse_base36(account, 7)?).ok()?),
        u16::try_from(parse_base36(leg, 4)?).ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn ids_are_short_and_readable() {
        let id = ClientOrderId::new(SignalId(1_767_225_600_123_456), AccountId(0x7d3e_51a0), 3);
        let text = encode(id);
        assert_eq!(text, "MHEFG8DWF9C.YR0S68.3");
        assert_eq!(decode(&text), Some(id));
        assert_eq!(decode(&text.to_lowercase()), Some(id));
        let widest = ClientOrderId::new(SignalId(u64::MAX), AccountId(u32::MAX), u16::MAX);
        assert_eq!(encode(widest).len(), CID_LEN_MAX);
        assert_eq!(decode(&encode(widest)), Some(widest));
    }

    #[test]
    fn other_comments_are_not_ids() {
        for comment in [
            "",
            "M",
            "from #1234",
            "[sl 1.08000]",
            "M1.2",
            "M1.2.3.4",
            "M1.2.-3",
            "MZZZZZZZZZZZZZZ.1.1",
            "M1.ZZZZZZZ.1",
        ] {
            assert_eq!(decode(comment), None, "{comment}");
        }
    }

    proptest! {
        #[test]
        fn every_id_round_trips_within_an_mt4_comment(signal: u64, account: u32, leg: u16) {
            let id = ClientOrderId::new(SignalId(signal), AccountId(account), leg);
            let text = encode(id);
            prop_assert!(text.len() <= 31);
            prop_assert_eq!(decode(&text), Some(id));
        }
    }
}
