//! pcef-sim: the EPC test client. At this stage it provides the `decode` tool; the PCEF,
//! BBERF and AF roles, load, replay and `lab` come with the servers.

pub mod decode;
