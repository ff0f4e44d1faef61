//! rpm: the package headers an rpmdb stores, whichever container holds them
//! (`rpmdb.sqlite` through [`crate::sqlite`], a Berkeley DB `Packages` through
//! [`crate::bdb`]). [`header`] turns one header blob into a [`crate::Package`].

pub mod header;

pub use header::parse_header;
