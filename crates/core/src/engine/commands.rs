//! commands
use super::Working;
pub(crate) fn apply(_w: &mut Working<'_>) {}
pub(crate) fn continue_rollback(_w: &mut Working<'_>) {}
pub(crate) fn check_drift(_w: &mut Working<'_>) {}
pub(crate) fn advance(_w: &mut Working<'_>) {}
