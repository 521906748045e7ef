//! OCS (home and visited roles): Gy online charging.
//!
//! Not built yet: this crate is a placeholder in the workspace so the layout of
//! DESIGN.md is in place. Its issue comes after the codec and the node.
