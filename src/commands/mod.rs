//! One module per subcommand: each wires the stages for its job and prints its report.

pub mod alert;
pub mod check;
pub mod demo;
pub mod inspect;
pub mod schema;
pub mod selection;
pub mod status;
pub mod sync;
pub mod verify;
