pub mod failure;
pub mod source;
