//! dora
