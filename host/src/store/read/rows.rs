//! What each read query's rows become, whichever the backend: the backends only
//! say how to read a cell ([`Cells`]), and every decoder is written once.

use super::{MeterOfResource, ResourceOwner, StatisticsQuery, StatisticsRow, StoredResource, StoredSample};
use crate::store::StoreError;

/// A row of a read query: its cells by position (times as microseconds since the
/// epoch, whatever the backend keeps).
pub trait Cells {
    /// Text.
    fn text(&self, index: usize) -> Result<String, StoreError>;
    /// Text or NULL.
    fn opt_text(&self, index: usize) -> Result<Option<String>, StoreError>;
    /// A number or NULL.
    fn opt_float(&self, index: usize) -> Result<Option<f64>, StoreError>;
    /// A time or NULL.
    fn opt_micros(&self, index: usize) -> Result<Option<i64>, StoreError>;

    /// A number.
    fn float(&self, index: usize) -> Result<f64, StoreError> {
        self.opt_float(index)?.ok_or_else(|| null(index))
    }

    /// A time.
    fn micros(&self, index: usize) -> Result<i64, StoreError> {
        self.opt_micros(index)?.ok_or_else(|| null(index))
    }
}

fn null(index: usize) -> StoreError {
    StoreError::Refused(format!("reading a row: column {index} is NULL"))
}

/// A row of [`super::sql::samples`].
pub fn sample(row: &dyn Cells) -> Result<StoredSample, StoreError> {
    Ok(StoredSample {
        message_id: row.text(0)?,
        meter: row.text(1)?,
        meter_type: row.text(2)?,
        unit: row.text(3)?,
        volume: row.float(4)?,
        resource_id: row.text(5)?,
        user_id: row.opt_text(6)?,
        project_id: row.opt_text(7)?,
        source: row.text(8)?,
        timestamp: row.micros(9)?,
        recorded_at: row.micros(10)?,
        metadata: row.text(11)?,
    })
}

/// A row of [`super::sql::meters`] (`unique`: without its resource).
pub fn meter(row: &dyn Cells, unique: bool) -> Result<MeterOfResource, StoreError> {
    Ok(MeterOfResource {
        name: row.text(0)?,
        meter_type: row.text(1)?,
        unit: row.text(2)?,
        resource: if unique { None } else { Some(owner(row, 3)?) },
    })
}

/// A row of [`super::sql::resources`] (its meters are read apart).
pub fn resource(row: &dyn Cells) -> Result<StoredResource, StoreError> {
    Ok(StoredResource {
        owner: owner(row, 0)?,
        first_sample: row.micros(4)?,
        last_sample: row.micros(5)?,
        metadata: row.text(6)?,
        meters: Vec::new(),
    })
}

/// A row of [`super::sql::meters_of`]: resource, meter.
pub fn pair(row: &dyn Cells) -> Result<(String, String), StoreError> {
    Ok((row.text(0)?, row.text(1)?))
}

/// The row of [`super::sql::time_range`]: none when no sample matched.
pub fn time_range(row: &dyn Cells) -> Result<Option<(i64, i64)>, StoreError> {
    Ok(row.opt_micros(0)?.zip(row.opt_micros(1)?))
}

/// A row of [`super::sql::statistics`] for `question`.
pub fn statistics(row: &dyn Cells, question: &StatisticsQuery) -> Result<StatisticsRow, StoreError> {
    let groups = question.groupby.len();
    let mut values = std::collections::BTreeMap::new();
    for (index, aggregate) in question.aggregates.iter().enumerate() {
        values.insert(*aggregate, row.opt_float(4 + groups + index)?);
    }
    Ok(StatisticsRow {
        period_start: if question.periods.is_some() { row.opt_micros(0)? } else { None },
        unit: row.text(1)?,
        groups: (0..groups).map(|g| row.opt_text(2 + g)).collect::<Result<_, _>>()?,
        first: row.micros(2 + groups)?,
        last: row.micros(3 + groups)?,
        values,
    })
}

fn owner(row: &dyn Cells, from: usize) -> Result<ResourceOwner, StoreError> {
    Ok(ResourceOwner {
        resource_id: row.text(from)?,
        user_id: row.opt_text(from + 1)?,
        project_id: row.opt_text(from + 2)?,
        source: row.text(from + 3)?,
    })
}
