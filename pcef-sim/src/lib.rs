//! pcef-sim: the EPC test client: the `decode` tool, the PCEF's Gx client ([`gx`]) and Gy
//! client ([`gy`]), and Gy/Gx `load`; the BBERF and AF roles, replay and `lab` come later.

pub mod client;
pub mod decode;
pub mod gx;
pub mod gy;
pub mod load;
