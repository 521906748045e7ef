//! pcef-sim: the EPC test client: the `decode` tool, the PCEF's Gx client ([`gx`]) and Gy
//! client ([`gy`]), the AF's Rx client ([`af`], the H-AS asking for local breakout), and
//! Gy/Gx `load`; the BBERF role, replay and `lab` come later.

pub mod af;
pub mod client;
pub mod decode;
pub mod gx;
pub mod gy;
pub mod load;
