//! LogQL for silt: [`parse`] turns a query into an [`ast::Expr`]; the [`Engine`] runs it on
//! Apache DataFusion over the storage engine, exposed as a table by [`provider::LogTable`].

pub mod ast;
pub mod delete;
pub mod duration;
pub mod format;
pub mod ip;
pub mod pattern;
pub mod pipeline;
mod engine;
mod error;
pub mod line_filter;
mod metric;
mod parser;
mod pieces;
pub mod provider;
mod range_scan;
mod udf;

pub use engine::{Direction, Engine, EntryResult, LogQuery, MetricResult, StreamResult, StreamVolume, DEFAULT_QUERY_MEMORY};
pub use error::{ParseError, QueryError};
pub use parser::{parse, parse_selector, MAX_NESTING, MAX_QUERY_BYTES};
