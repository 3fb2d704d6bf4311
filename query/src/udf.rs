//! LogQL stages that run inside DataFusion plans as scalar UDFs.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray};
use arrow::datatypes::DataType;
use datafusion::common::exec_err;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};

use crate::line_filter::LineFilterChain;

/// `line_filter(line) -> bool`: the query's chain of line filters, compiled once.
#[derive(Debug)]
pub struct LineFilterUdf {
    chain: Arc<LineFilterChain>,
    /// The filters' canonical text: identity for DataFusion's plan comparisons.
    key: String,
    signature: Signature,
}

impl LineFilterUdf {
    pub fn new(chain: LineFilterChain, key: String) -> Self {
        LineFilterUdf {
            chain: Arc::new(chain),
            key,
            signature: Signature::exact(vec![DataType::Utf8], Volatility::Immutable),
        }
    }
}

impl PartialEq for LineFilterUdf {
    fn eq(&self, o: &Self) -> bool {
        self.key == o.key
    }
}
impl Eq for LineFilterUdf {}
impl Hash for LineFilterUdf {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.key.hash(h)
    }
}

impl ScalarUDFImpl for LineFilterUdf {

    fn name(&self) -> &str {
        "line_filter"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let [arg] = args.args.as_slice() else { return exec_err!("line_filter takes one argument") };
        let arr = arg.to_array(args.number_rows)?;
        let Some(lines) = arr.as_string_opt::<i32>() else { return exec_err!("line_filter expects a Utf8 column") };
        let out: BooleanArray = (0..lines.len())
            .map(|i| Some(lines.is_valid(i) && self.chain.matches(lines.value(i).as_bytes())))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}
