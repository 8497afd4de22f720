//! Risk guards of one account: limits checked before every order, and equity guards checked on
//! every balance/equity update.

use std::fmt;

use mirror_model::{Money, Qty, Ratio};

/// What an account does once an equity guard trips.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreachAction {
    /// Keep closing positions (leader closes are still copied), open nothing new.
    #[default]
    CloseOnly,
    /// Do nothing at all until an operator resets the account or the day rolls over.
    Freeze,
}

/// The limits of one account. Every field is optional; a missing limit is not checked.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RiskLimits {
    /// Largest quantity of one order.
    pub max_order_qty: Option<Qty>,
    /// Most positions open at once (opens in flight count).
    pub max_open_positions: Option<u32>,
    /// Largest gross quantity on one symbol (positions plus working opens).
    pub max_symbol_exposure: Option<Qty>,
    /// Largest loss from the day's starting equity, in money.
    pub daily_loss_limit: Option<Money>,
    /// Largest drawdown from the day's equity high-water mark, in percent.
    pub max_daily_drawdown_pct: Option<Ratio>,
    /// What a tripped equity guard does to the account.
    pub on_breach: BreachAction,
    /// Close every position of the account when an equity guard trips.
    pub flatten_on_breach: bool,
    /// When this account's drawdown from the day's high reaches this percent, close every
    /// position of this account and of every account that copies it, directly or through a
    /// chain, and freeze them all for the rest of the day. (The original prototype's rule:
    /// 3 % on the master.)
    pub flatten_group_at_drawdown_pct: Option<Ratio>,
}

/// Where an account stands with its risk.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskMode {
    /// Trading normally.
    #[default]
    Normal,
    /// Closing only.
    CloseOnly,
    /// Not trading.
    Frozen,
}

impl fmt::Display for RiskMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Normal => "normal",
            Self::CloseOnly => "close-only",
            Self::Frozen => "frozen",
        })
    }
}

/// Which equity guard tripped.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Guard {
    /// `daily_loss_limit`.
    DailyLoss,
    /// `max_daily_drawdown_pct`.
    DailyDrawdown,
    /// `flatten_group_at_drawdown_pct`.
    GroupDrawdown,
}

/// A tripped equity guard, with the numbers that tripped it.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub struct Breach {
    /// The guard.
    pub guard: Guard,
    /// Equity when it tripped.
    pub equity: Money,
    /// The day's starting equity.
    pub day_start: Money,
    /// The day's equity high-water mark.
    pub day_high: Money,
    /// The mode the account moved to.
    pub mode: RiskMode,
    /// Whether the account's positions are to be closed.
    pub flatten: bool,
    /// Whether every follower downstream is to be closed too.
    pub flatten_group: bool,
}

impl Breach {
    /// Drawdown from the day's high, in hundredths of a percent (for display).
    pub fn drawdown_bp(&self) -> i64 {
        if !self.day_high.is_positive() {
            return 0;
        }
        let drop = i128::from(self.day_high.raw() - self.equity.raw());
        i64::try_from(drop * 10_000 / i128::from(self.day_high.raw())).unwrap_or(i64::MAX)
    }
}

impl fmt::Display for Breach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bp = self.drawdown_bp();
        write!(
            f,
            "{:?}: equity {} (day start {}, day high {}, drawdown {}.{:02}%) → {}",
            self.guard,
            self.equity,
            self.day_start,
            self.day_high,
            bp / 100,
            (bp % 100).abs(),
            self.mode
        )?;
        if self.flatten_group {
            f.write_str(", flattening the account and every follower")
        } else if self.flatten {
            f.write_str(", flattening the account")
        } else {
            Ok(())
        }
    }
}

/// An account's risk state for the current day.
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct RiskState {
    pub(crate) limits: RiskLimits,
    pub(crate) mode: RiskMode,
    day_start: Money,
    day_high: Money,
    tripped_today: bool,
    group_tripped_today: bool,
}

/// `(high - equity) / high ≥ pct / 100`, exactly.
fn drawdown_reached(high: Money, equity: Money, pct: Ratio) -> bool {
    if !high.is_positive() {
        return false;
    }
    let drop = i128::from(high.raw()) - i128::from(equity.raw());
    drop * 100 * i128::from(pct.den()) >= i128::from(pct.num()) * i128::from(high.raw())
}

impl RiskState {
    pub(crate) fn new(limits: RiskLimits, equity: Money) -> Self {
        Self {
            limits,
            mode: RiskMode::Normal,
            day_start: equity,
            day_high: equity,
            tripped_today: false,
            group_tripped_today: false,
        }
    }

    /// Starts a new trading day at `equity`: the daily guards re-arm and a mode they set is
    /// lifted.
    pub(crate) fn new_day(&mut self, equity: Money) {
        self.day_start = equity;
        self.day_high = equity;
        self.tripped_today = false;
        self.group_tripped_today = false;
        self.mode = RiskMode::Normal;
    }

    /// An operator lifts the mode (the guards stay armed for the day).
    pub(crate) fn reset(&mut self) {
        self.mode = RiskMode::Normal;
    }

    /// Freezes the account (a group flatten from its leader).
    pub(crate) fn freeze(&mut self) {
        self.mode = RiskMode::Frozen;
    }

    /// Takes a new equity reading; returns a breach when a guard trips now.
    pub(crate) fn on_equity(&mut self, equity: Money) -> Option<Breach> {
        self.day_high = self.day_high.max(equity);
        let breach = |guard, mode, flatten, flatten_group| Breach {
            guard,
            equity,
            day_start: self.day_start,
            day_high: self.day_high,
            mode,
            flatten,
            flatten_group,
        };
        if !self.group_tripped_today
            && let Some(pct) = self.limits.flatten_group_at_drawdown_pct
            && drawdown_reached(self.day_high, equity, pct)
        {
            self.group_tripped_today = true;
            self.tripped_today = true;
            self.mode = RiskMode::Frozen;
            return Some(breach(Guard::GroupDrawdown, RiskMode::Frozen, true, true));
        }
        if self.tripped_today {
            return None;
        }
        let guard = if self.limits.daily_loss_limit.is_some_and(|limit| self.day_start - equity >= limit) {
            Guard::DailyLoss
        } else if self.limits.max_daily_drawdown_pct.is_some_and(|pct| drawdown_reached(self.day_high, equity, pct)) {
            Guard::DailyDrawdown
        } else {
            return None;
        };
        self.tripped_today = true;
        let mode = match self.limits.on_breach {
            BreachAction::CloseOnly => RiskMode::CloseOnly,
            BreachAction::Freeze => RiskMode::Frozen,
        };
        self.mode = self.mode.max(mode);
        Some(breach(guard, self.mode, self.limits.flatten_on_breach, false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(text: &str) -> Money {
        Money::parse(text).unwrap()
    }

    #[test]
    fn drawdown_is_measured_from_the_days_high_exactly() {
        let limits = RiskLimits {
            max_daily_drawdown_pct: Some(Ratio::parse("3").unwrap()),
            on_breach: BreachAction::Freeze,
            flatten_on_breach: true,
            ..RiskLimits::default()
        };
        let mut risk = RiskState::new(limits, m("100000"));
        assert_eq!(risk.on_equity(m("110000")), None);
        // 3 % of the 110,000 high is 3,300: 106,700.01 is not enough, 106,700 is.
        assert_eq!(risk.on_equity(m("106700.01")), None);
        let breach = risk.on_equity(m("106700")).unwrap();
        assert_eq!((breach.guard, breach.mode, breach.flatten), (Guard::DailyDrawdown, RiskMode::Frozen, true));
        assert_eq!(breach.drawdown_bp(), 300);
        assert_eq!(risk.on_equity(m("90000")), None, "a guard trips once a day");
        risk.new_day(m("90000"));
        assert_eq!(risk.mode, RiskMode::Normal);
        assert!(risk.on_equity(m("87300")).is_some());
    }

    #[test]
    fn daily_loss_counts_from_the_days_start() {
        let limits = RiskLimits { daily_loss_limit: Some(m("500")), ..RiskLimits::default() };
        let mut risk = RiskState::new(limits, m("10000"));
        assert_eq!(risk.on_equity(m("9500.01")), None);
        let breach = risk.on_equity(m("9500")).unwrap();
        assert_eq!((breach.guard, breach.mode, breach.flatten), (Guard::DailyLoss, RiskMode::CloseOnly, false));
    }

    #[test]
    fn group_drawdown_freezes_and_flattens_the_group() {
        let limits =
            RiskLimits { flatten_group_at_drawdown_pct: Some(Ratio::parse("3").unwrap()), ..RiskLimits::default() };
        let mut risk = RiskState::new(limits, m("50000"));
        assert_eq!(risk.on_equity(m("48500.01")), None);
        let breach = risk.on_equity(m("48500")).unwrap();
        assert_eq!(breach.guard, Guard::GroupDrawdown);
        assert!(breach.flatten && breach.flatten_group);
        assert_eq!(risk.mode, RiskMode::Frozen);
        assert_eq!(
            breach.to_string(),
            "GroupDrawdown: equity 48500 (day start 50000, day high 50000, drawdown 3.00%) → frozen, flattening the account and every follower"
        );
    }
}
