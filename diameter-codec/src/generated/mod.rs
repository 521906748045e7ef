//! Generated constants (empty until diameter-dictgen runs).
