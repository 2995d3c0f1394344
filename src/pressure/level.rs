//! Pressure levels and thresholds.

/// How close usage is to the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum PressureLevel {
    /// Below the warning threshold.
    #[default]
    Normal,
    /// At or above the warning threshold (80 % by default): clean up caches and dead contexts.
    Warning,
    /// At or above the critical threshold (90 %): force eviction.
    Critical,
    /// At or above the emergency threshold (95 %): reject new work.
    Emergency,
}

impl PressureLevel {
    /// All levels, lowest first.
    pub const ALL: [PressureLevel; 4] = [
        PressureLevel::Normal,
        PressureLevel::Warning,
        PressureLevel::Critical,
        PressureLevel::Emergency,
    ];

    /// Lower-case name (`"normal"`, `"warning"`, …).
    pub const fn as_str(self) -> &'static str {
        match self {
            PressureLevel::Normal => "normal",
            PressureLevel::Warning => "warning",
            PressureLevel::Critical => "critical",
            PressureLevel::Emergency => "emergency",
        }
    }
}

impl core::fmt::Display for PressureLevel {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Thresholds as fractions of the budget, and the hysteresis margin.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// Warning threshold (default 0.80).
    pub warning: f64,
    /// Critical threshold (default 0.90).
    pub critical: f64,
    /// Emergency threshold (default 0.95).
    pub emergency: f64,
    /// A level is left only when usage falls this far below its threshold
    /// (default 0.02, i.e. 2 % of the budget).
    pub hysteresis: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            warning: 0.80,
            critical: 0.90,
            emergency: 0.95,
            hysteresis: 0.02,
        }
    }
}

impl Thresholds {
    /// Whether the fractions are ordered and within (0, 1].
    pub fn is_valid(&self) -> bool {
        0.0 < self.warning
            && self.warning < self.critical
            && self.critical < self.emergency
            && self.emergency <= 1.0
            && (0.0..self.warning).contains(&self.hysteresis)
    }

    /// Threshold of `level` in bytes of `budget` (0 for Normal).
    pub fn bytes(&self, level: PressureLevel, budget: u64) -> u64 {
        let f = match level {
            PressureLevel::Normal => 0.0,
            PressureLevel::Warning => self.warning,
            PressureLevel::Critical => self.critical,
            PressureLevel::Emergency => self.emergency,
        };
        (budget as f64 * f) as u64
    }

    /// The level for `usage`, given the `current` level (hysteresis: a level is
    /// kept until usage falls `hysteresis` below its threshold).
    pub fn level_for(&self, usage: u64, budget: u64, current: PressureLevel) -> PressureLevel {
        if budget == 0 {
            return PressureLevel::Normal;
        }
        let frac = usage as f64 / budget as f64;
        let raw = if frac >= self.emergency {
            PressureLevel::Emergency
        } else if frac >= self.critical {
            PressureLevel::Critical
        } else if frac >= self.warning {
            PressureLevel::Warning
        } else {
            PressureLevel::Normal
        };
        if raw >= current {
            return raw;
        }
        // Going down: step down only past each threshold minus the margin.
        let mut level = current;
        while level > raw {
            let t = self.bytes(level, budget) as f64 / budget as f64;
            if frac < t - self.hysteresis {
                level = PressureLevel::ALL[level as usize - 1];
            } else {
                break;
            }
        }
        level
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use PressureLevel::*;

    #[test]
    fn levels_rise_at_thresholds_and_fall_with_hysteresis() {
        let t = Thresholds::default();
        let b = 1000;
        assert_eq!(t.level_for(799, b, Normal), Normal);
        assert_eq!(t.level_for(800, b, Normal), Warning);
        assert_eq!(t.level_for(900, b, Normal), Critical);
        assert_eq!(t.level_for(950, b, Normal), Emergency);
        // Falling: 940 is below 950 but within the 2 % margin.
        assert_eq!(t.level_for(940, b, Emergency), Emergency);
        assert_eq!(t.level_for(929, b, Emergency), Critical);
        assert_eq!(t.level_for(500, b, Emergency), Normal);
        assert_eq!(t.level_for(790, b, Warning), Warning);
        assert_eq!(t.level_for(779, b, Warning), Normal);
        assert!(t.is_valid());
        assert!(
            !Thresholds {
                warning: 0.9,
                critical: 0.8,
                ..t
            }
            .is_valid()
        );
    }
}
