//! pcef-sim: the EPC test client. At this stage it provides the `decode` tool and Gy
//! `load`; the PCEF, BBERF and AF roles, Gx load, replay and `lab` come with the servers.

pub mod client;
pub mod decode;
pub mod gx;
pub mod gy;
pub mod load;
