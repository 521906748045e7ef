//! pcef-sim: the EPC test client: the `decode` tool, the PCEF's Gx client ([`gx`]) and Gy
//! client ([`gy`]), the BBERF's Gxx client ([`bberf`]), the AF's Rx client ([`af`]: an AF
//! session subscribing to bearer events), the home application server asking for local
//! breakout over Rx ([`has`], document 000), and Gy/Gx `load`; each policy client can reach its PCRF through a DRA with document 002's
//! termination behaviours ([`client::Upstream`]). Replay and `lab` come later.

pub mod af;
pub mod bberf;
pub mod client;
pub mod decode;
pub mod gx;
pub mod gy;
pub mod has;
pub mod load;
