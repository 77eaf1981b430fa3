//! One module per WIT world. Their custom sections describe imports only; the
//! exports are described by the `export_*!` macro a policy invokes, so a
//! component implements exactly the world it exports. Not public API.

pub mod bidder;
pub mod scorer;
pub mod selector;
