//! Size arithmetic: exact rational sizes, rounded once to the lot step.
//!
//! Every sizing rule is a product of integers and ratios applied to the leader's quantity. It
//! is carried as an exact `i128` fraction (reduced at each step) and rounded to the follower's
//! lot step exactly once, so `0.1 + 0.2` style drift cannot happen and the same inputs always
//! give the same lots.

use crate::fixed::{Fraction, Money, Price, Qty, Ratio, Rounding, SCALE};
use crate::instrument::InstrumentSpec;
use crate::rules::{BelowMinimum, SizeAdjustment, SizingRule, SkipReason};

/// The numbers a sizing rule may need.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SizingInputs {
    pub(crate) leader_qty: Qty,
    pub(crate) leader_contract_size: Option<Qty>,
    pub(crate) leader_balance: Option<Money>,
    pub(crate) leader_equity: Option<Money>,
    pub(crate) map_ratio: Ratio,
    pub(crate) follower_balance: Money,
    pub(crate) follower_equity: Money,
    pub(crate) stop_distance: Option<Price>,
}

/// The exact (unrounded) follower size in raw 10⁻⁸ units.
pub(crate) fn exact_size(
    rule: &SizingRule,
    inputs: &SizingInputs,
    spec: &InstrumentSpec,
) -> Result<Fraction, SkipReason> {
    let leader = Fraction::from_int(inputs.leader_qty.raw().into());
    let overflow = SkipReason::SizeOverflow;
    let size = match *rule {
        SizingRule::Fixed { qty } => Some(Fraction::from_int(qty.raw().into())),
        SizingRule::Multiplier { ratio } => leader.mul_ratio(ratio).and_then(|s| s.mul_ratio(inputs.map_ratio)),
        SizingRule::BalanceRatio { multiplier } => {
            let leader_balance =
                inputs.leader_balance.filter(|b| b.is_positive()).ok_or(SkipReason::NeedsLeaderBalance)?;
            leader
                .scale(inputs.follower_balance.raw().max(0).into(), leader_balance.raw().into())
                .and_then(|s| s.mul_ratio(multiplier))
                .and_then(|s| s.mul_ratio(inputs.map_ratio))
        }
        SizingRule::EquityRatio { multiplier } => {
            let leader_equity =
                inputs.leader_equity.filter(|e| e.is_positive()).ok_or(SkipReason::NeedsLeaderEquity)?;
            leader
                .scale(inputs.follower_equity.raw().max(0).into(), leader_equity.raw().into())
                .and_then(|s| s.mul_ratio(multiplier))
                .and_then(|s| s.mul_ratio(inputs.map_ratio))
        }
        SizingRule::Notional { multiplier } => {
            let leader_contract = inputs.leader_contract_size.ok_or(SkipReason::NeedsContractSize)?;
            leader
                .scale(leader_contract.raw().into(), spec.contract_size.raw().into())
                .and_then(|s| s.mul_ratio(multiplier))
        }
        SizingRule::RiskPercent { percent } => {
            let distance = inputs.stop_distance.filter(|d| d.is_positive()).ok_or(SkipReason::NeedsStopLoss)?;
            // lots = equity × percent/100 ÷ (distance/tick × tick_value), in raw units:
            // qty_raw = equity_raw × percent × tick_raw × SCALE ÷ (100 × distance_raw × tick_value_raw)
            Fraction::from_int(inputs.follower_equity.raw().max(0).into())
                .mul_ratio(percent)
                .and_then(|s| s.scale(spec.tick_size.raw().into(), 100))
                .and_then(|s| s.scale(SCALE.into(), distance.raw().into()))
                .and_then(|s| s.scale(1, spec.tick_value.raw().into()))
        }
    };
    size.ok_or(overflow)
}

/// Rounds an exact size to the lot step and applies the link maximum, the instrument maximum
/// and the minimum policy.
pub(crate) fn to_tradable(
    exact: Fraction,
    spec: &InstrumentSpec,
    rounding: Rounding,
    below_minimum: BelowMinimum,
    link_max: Option<Qty>,
) -> Result<(Qty, SizeAdjustment), SkipReason> {
    let rounded_raw = spec.round_to_step_raw(exact, rounding).ok_or(SkipReason::SizeOverflow)?;
    let mut max = spec.max_on_step();
    if let Some(link_max) = link_max {
        let step = spec.lot_step.raw();
        max = max.min(Qty::from_raw(link_max.raw() / step * step));
    }
    if rounded_raw > i128::from(max.raw()) {
        return if max >= spec.min_qty {
            Ok((max, SizeAdjustment::ClampedToMax(max)))
        } else {
            Err(SkipReason::BelowMinimum { computed: max, min: spec.min_qty })
        };
    }
    let rounded = Qty::from_raw(i64::try_from(rounded_raw).map_err(|_| SkipReason::SizeOverflow)?);
    if rounded >= spec.min_qty {
        return Ok((rounded, SizeAdjustment::None));
    }
    // Below the minimum. Rounding up to it only makes sense for a size that was asked for;
    // an exact zero (no balance, no equity) is never raised.
    match below_minimum {
        BelowMinimum::RoundUpToMinimum if exact.round(Rounding::Up) > 0 => {
            Ok((spec.min_qty, SizeAdjustment::RaisedToMin(spec.min_qty)))
        }
        _ => Err(SkipReason::BelowMinimum { computed: rounded, min: spec.min_qty }),
    }
}

/// How much of a follower's `open` quantity to close when the leader closed `closed` out of
/// `before`: the same fraction, rounded by `rounding` to the lot step. When the remainder
/// would fall under the instrument minimum the whole quantity is closed, since such a
/// remainder could not be closed later on many brokers.
pub fn proportional_close(
    open: Qty,
    closed: Qty,
    before: Qty,
    spec: &InstrumentSpec,
    rounding: Rounding,
) -> Result<Qty, SkipReason> {
    if !before.is_positive() || !closed.is_positive() {
        return Err(SkipReason::PartialCloseRoundsToZero { open });
    }
    if closed >= before {
        return Ok(open);
    }
    let exact = Fraction::from_int(open.raw().into())
        .scale(closed.raw().into(), before.raw().into())
        .ok_or(SkipReason::SizeOverflow)?;
    let close = spec.round_to_step(exact, rounding).ok_or(SkipReason::SizeOverflow)?.min(open);
    if close.is_zero() {
        return Err(SkipReason::PartialCloseRoundsToZero { open });
    }
    let remainder = open - close;
    if remainder.is_positive() && remainder < spec.min_qty {
        return Ok(open);
    }
    Ok(close)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instrument::tests::{es, eurusd, spec as make_spec};
    use proptest::prelude::*;

    fn inputs(leader_qty: Qty) -> SizingInputs {
        SizingInputs {
            leader_qty,
            leader_contract_size: None,
            leader_balance: None,
            leader_equity: None,
            map_ratio: Ratio::ONE,
            follower_balance: Money::ZERO,
            follower_equity: Money::ZERO,
            stop_distance: None,
        }
    }

    fn size(
        rule: SizingRule,
        leader_qty: Qty,
        spec: &InstrumentSpec,
        rounding: Rounding,
        below: BelowMinimum,
    ) -> Result<Qty, SkipReason> {
        let exact = exact_size(&rule, &inputs(leader_qty), spec)?;
        to_tradable(exact, spec, rounding, below, None).map(|(qty, _)| qty)
    }

    fn q(text: &str) -> Qty {
        Qty::parse(text).unwrap()
    }

    #[test]
    fn decimal_lots_sum_exactly() {
        // Ten copies at 0.1 × 1 lot add up to exactly 1 lot: no binary-float drift.
        let spec = eurusd();
        let one_tenth = SizingRule::Multiplier { ratio: Ratio::parse("0.1").unwrap() };
        let mut total = Qty::ZERO;
        for _ in 0..10 {
            total += size(one_tenth, q("1"), &spec, Rounding::Down, BelowMinimum::Skip).unwrap();
        }
        assert_eq!(total, q("1"));
        // 0.3 = 0.1 + 0.2 exactly.
        let a = size(SizingRule::Fixed { qty: q("0.1") }, q("9"), &spec, Rounding::Down, BelowMinimum::Skip).unwrap();
        let b = size(SizingRule::Fixed { qty: q("0.2") }, q("9"), &spec, Rounding::Down, BelowMinimum::Skip).unwrap();
        assert_eq!(a + b, q("0.3"));
        // A third of a lot, rounded down to the step, three times, is 0.99 — never 1.0000001.
        let third = SizingRule::Multiplier { ratio: Ratio::parse("1/3").unwrap() };
        assert_eq!(size(third, q("1"), &spec, Rounding::Down, BelowMinimum::Skip).unwrap(), q("0.33"));
    }

    #[test]
    fn min_lot_edges() {
        let spec = eurusd();
        let half = SizingRule::Multiplier { ratio: Ratio::parse("0.5").unwrap() };
        assert_eq!(size(half, q("0.02"), &spec, Rounding::Down, BelowMinimum::Skip), Ok(q("0.01")));
        assert_eq!(
            size(half, q("0.01"), &spec, Rounding::Down, BelowMinimum::Skip),
            Err(SkipReason::BelowMinimum { computed: Qty::ZERO, min: q("0.01") })
        );
        assert_eq!(size(half, q("0.01"), &spec, Rounding::Nearest, BelowMinimum::Skip), Ok(q("0.01")));
        assert_eq!(size(half, q("0.01"), &spec, Rounding::Down, BelowMinimum::RoundUpToMinimum), Ok(q("0.01")));
        // A minimum above the step: 0.1 min, 0.01 step.
        let coarse = make_spec("XAUUSD", "100", "0.01", "1", "0.01", "0.1", "50", 2);
        assert_eq!(
            size(half, q("0.19"), &coarse, Rounding::Down, BelowMinimum::Skip),
            Err(SkipReason::BelowMinimum { computed: q("0.09"), min: q("0.1") })
        );
        assert_eq!(size(half, q("0.2"), &coarse, Rounding::Down, BelowMinimum::Skip), Ok(q("0.1")));
        assert_eq!(size(half, q("0.19"), &coarse, Rounding::Down, BelowMinimum::RoundUpToMinimum), Ok(q("0.1")));
    }

    #[test]
    fn tiny_and_huge_ratios() {
        let spec = eurusd();
        let tiny = SizingRule::Multiplier { ratio: Ratio::parse("0.000000000001").unwrap() };
        assert!(matches!(
            size(tiny, q("100"), &spec, Rounding::Down, BelowMinimum::Skip),
            Err(SkipReason::BelowMinimum { .. })
        ));
        assert_eq!(size(tiny, q("100"), &spec, Rounding::Down, BelowMinimum::RoundUpToMinimum), Ok(q("0.01")));
        let huge = SizingRule::Multiplier { ratio: Ratio::parse("10000000000").unwrap() };
        assert_eq!(size(huge, q("10000"), &spec, Rounding::Down, BelowMinimum::Skip), Ok(q("100")));
        let mut exact = inputs(q("10000000000"));
        exact.follower_balance = Money::parse("10000000000").unwrap();
        exact.leader_balance = Some(Money::from_raw(1));
        let rule = SizingRule::BalanceRatio { multiplier: Ratio::parse("10000000000").unwrap() };
        // 10¹⁰ lots × 10¹⁸ × 10¹⁰: past any sane size, reported rather than wrapped.
        let result = exact_size(&rule, &exact, &spec)
            .and_then(|e| to_tradable(e, &spec, Rounding::Down, BelowMinimum::Skip, None));
        assert!(matches!(result, Err(SkipReason::SizeOverflow) | Ok((_, SizeAdjustment::ClampedToMax(_)))));
    }

    #[test]
    fn zero_equity_is_never_raised_to_the_minimum() {
        let spec = eurusd();
        let mut zero = inputs(q("1"));
        zero.leader_equity = Some(Money::parse("1000").unwrap());
        let exact = exact_size(&SizingRule::EquityRatio { multiplier: Ratio::ONE }, &zero, &spec).unwrap();
        assert_eq!(
            to_tradable(exact, &spec, Rounding::Down, BelowMinimum::RoundUpToMinimum, None),
            Err(SkipReason::BelowMinimum { computed: Qty::ZERO, min: q("0.01") })
        );
    }

    #[test]
    fn proportional_closes() {
        let spec = eurusd();
        assert_eq!(proportional_close(q("0.03"), q("1"), q("2"), &spec, Rounding::Down), Ok(q("0.01")));
        assert_eq!(proportional_close(q("0.03"), q("1"), q("2"), &spec, Rounding::Nearest), Ok(q("0.02")));
        assert_eq!(
            proportional_close(q("0.01"), q("1"), q("2"), &spec, Rounding::Down),
            Err(SkipReason::PartialCloseRoundsToZero { open: q("0.01") })
        );
        assert_eq!(proportional_close(q("4"), q("1"), q("2"), &spec, Rounding::Down), Ok(q("2")));
        let coarse = make_spec("XAUUSD", "100", "0.01", "1", "0.01", "0.1", "50", 2);
        // 0.25 × 3/5 = 0.15 leaves 0.10 — fine; × 4/5 = 0.2 leaves 0.05 < min → close all.
        assert_eq!(proportional_close(q("0.25"), q("3"), q("5"), &coarse, Rounding::Down), Ok(q("0.15")));
        assert_eq!(proportional_close(q("0.25"), q("4"), q("5"), &coarse, Rounding::Down), Ok(q("0.25")));
        let es = es();
        assert_eq!(proportional_close(q("3"), q("1"), q("2"), &es, Rounding::Down), Ok(q("1")));
    }

    fn lots() -> impl Strategy<Value = Qty> {
        (1i64..=1_000_000).prop_map(|hundredths| Qty::from_raw(hundredths * 1_000_000))
    }

    fn ratios() -> impl Strategy<Value = Ratio> {
        (1i64..=1_000_000_000, 0u32..=12).prop_map(|(num, decimals)| Ratio::new(num, 10i64.pow(decimals)).unwrap())
    }

    proptest! {
        /// Whatever the ratio, a multiplier copy is a whole number of steps within [min, max],
        /// never above the exact product when rounding down, and less than one step below it.
        #[test]
        fn multiplier_sizes_are_tradable_and_tight(leader in lots(), ratio in ratios()) {
            let spec = eurusd();
            let exact = exact_size(&SizingRule::Multiplier { ratio }, &inputs(leader), &spec).unwrap();
            let exact_raw_x_den = i128::from(leader.raw()) * i128::from(ratio.num());
            let den = i128::from(ratio.den());
            match to_tradable(exact, &spec, Rounding::Down, BelowMinimum::Skip, None) {
                Ok((qty, adjustment)) => {
                    prop_assert!(spec.qty_is_tradable(qty));
                    if adjustment == SizeAdjustment::None {
                        let qty_x_den = i128::from(qty.raw()) * den;
                        prop_assert!(qty_x_den <= exact_raw_x_den);
                        prop_assert!(exact_raw_x_den - qty_x_den < i128::from(spec.lot_step.raw()) * den);
                    } else {
                        prop_assert_eq!(qty, spec.max_qty);
                        prop_assert!(i128::from(qty.raw()) * den <= exact_raw_x_den);
                    }
                }
                Err(SkipReason::BelowMinimum { computed, min }) => {
                    prop_assert!(computed < min);
                    prop_assert!(i128::from(spec.min_qty.raw()) * den > exact_raw_x_den);
                }
                Err(other) => prop_assert!(false, "unexpected {other:?}"),
            }
        }

        /// Down ≤ Nearest ≤ Up, each at most one step apart.
        #[test]
        fn rounding_modes_are_ordered(leader in lots(), ratio in ratios()) {
            let spec = eurusd();
            let exact = exact_size(&SizingRule::Multiplier { ratio }, &inputs(leader), &spec).unwrap();
            let step = spec.lot_step.raw();
            let down = spec.round_to_step_raw(exact, Rounding::Down).unwrap();
            let nearest = spec.round_to_step_raw(exact, Rounding::Nearest).unwrap();
            let up = spec.round_to_step_raw(exact, Rounding::Up).unwrap();
            prop_assert!(down <= nearest && nearest <= up);
            prop_assert!(up - down <= i128::from(step));
        }

        /// Notional is preserved to within one follower step: leader qty × leader contract
        /// ≈ follower qty × follower contract.
        #[test]
        fn notional_is_preserved_across_contract_sizes(leader in lots(), leader_contract in 1i64..=200_000, follower_contract in 1i64..=200_000) {
            let mut follower = eurusd();
            follower.contract_size = Qty::from_units(follower_contract).unwrap();
            follower.max_qty = Qty::from_units(10_000_000).unwrap();
            let mut input = inputs(leader);
            input.leader_contract_size = Some(Qty::from_units(leader_contract).unwrap());
            let exact = exact_size(&SizingRule::Notional { multiplier: Ratio::ONE }, &input, &follower).unwrap();
            if let Ok((qty, SizeAdjustment::None)) = to_tradable(exact, &follower, Rounding::Down, BelowMinimum::Skip, None) {
                let leader_notional = i128::from(leader.raw()) * i128::from(leader_contract);
                let follower_notional = i128::from(qty.raw()) * i128::from(follower_contract);
                prop_assert!(follower_notional <= leader_notional);
                prop_assert!(leader_notional - follower_notional < i128::from(follower.lot_step.raw()) * i128::from(follower_contract));
            }
        }

        /// A run of leader partial closes ending in a full close never closes more than the
        /// follower holds, and the final close takes exactly what is left.
        #[test]
        fn partial_close_sequences_never_overclose(follower_hundredths in 1i64..=10_000, cuts in proptest::collection::vec(1i64..=99, 1..6)) {
            let spec = eurusd();
            let mut follower_open = Qty::from_raw(follower_hundredths * 1_000_000);
            let mut leader_open = 1_000_000i64;
            for percent in cuts {
                let closed = leader_open * percent / 100;
                if closed == 0 || closed >= leader_open { continue; }
                if let Ok(close) = proportional_close(follower_open, Qty::from_raw(closed), Qty::from_raw(leader_open), &spec, Rounding::Down) {
                    prop_assert!(close <= follower_open);
                    prop_assert!(spec.qty_is_tradable(close) || close == follower_open);
                    follower_open -= close;
                }
                leader_open -= closed;
                if follower_open.is_zero() { break; }
            }
            if follower_open.is_positive() {
                prop_assert_eq!(proportional_close(follower_open, Qty::from_raw(leader_open), Qty::from_raw(leader_open), &spec, Rounding::Down), Ok(follower_open));
            }
        }
    }
}
