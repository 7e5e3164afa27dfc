//! Writes the scale benchmark's dataset: `scale_gen OUT.parquet ROWS [HOSTS] [PORT]` makes a
//! parquet file of ROWS rows (`photo_url`, `taxon_name`) whose URLs spread over HOSTS distinct
//! loopback hosts (`http://127.a.b.1:PORT/img/<row>.jpg`), 1,000 classes, in row groups of
//! 1M rows. Nothing is downloaded: the seeder under test runs with `--no-work`.

use std::fs::File;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use arrow_array::builder::StringBuilder;
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

const BATCH: u64 = 1 << 20;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let out = args
        .get(1)
        .context("usage: scale_gen OUT.parquet ROWS [HOSTS] [PORT]")?;
    let rows: u64 = args.get(2).context("ROWS missing")?.parse()?;
    let hosts: u64 = args.get(3).map_or(Ok(1_000), |h| h.parse())?.max(1);
    let port: u16 = args.get(4).map_or(Ok(8080), |p| p.parse())?;
    let started = Instant::now();
    let schema = Arc::new(Schema::new(vec![
        Field::new("photo_url", DataType::Utf8, true),
        Field::new("taxon_name", DataType::Utf8, true),
    ]));
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(BATCH as usize))
        .build();
    let tmp = format!("{out}.tmp");
    let mut w = ArrowWriter::try_new(File::create(&tmp)?, schema.clone(), Some(props))?;
    let mut first = 0u64;
    while first < rows {
        let n = BATCH.min(rows - first);
        let mut urls = StringBuilder::with_capacity(n as usize, n as usize * 40);
        let mut classes = StringBuilder::with_capacity(n as usize, n as usize * 12);
        for i in first..first + n {
            let h = i % hosts;
            urls.append_value(format!(
                "http://127.{}.{}.1:{port}/img/{i}.jpg",
                h / 250,
                h % 250
            ));
            classes.append_value(format!("class-{:03}", (i / 7) % 1_000));
        }
        let cols: Vec<ArrayRef> = vec![Arc::new(urls.finish()), Arc::new(classes.finish())];
        w.write(&RecordBatch::try_new(schema.clone(), cols)?)?;
        first += n;
    }
    w.close()?;
    std::fs::rename(&tmp, out)?;
    println!(
        "wrote {out}: {rows} rows over {hosts} hosts in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
