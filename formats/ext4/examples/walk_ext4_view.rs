//! The same walk as `walk`, done by the ext4-view crate: the comparison point of
//! the reader benchmark.
//!
//!     cargo run --release -p vmscrub-ext4 --example walk_ext4_view -- IMAGE

use ext4_view::{Ext4, FileType, Path};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let image = std::env::args()
        .nth(1)
        .ok_or("usage: walk_ext4_view IMAGE")?;
    let fs = Ext4::load_from_path(&image)?;
    let mut dirs = vec![b"/".to_vec()];
    let (mut entries, mut files, mut bytes, mut sum) = (0u64, 0u64, 0u64, 0u64);
    while let Some(d) = dirs.pop() {
        for e in fs.read_dir(Path::new(&d))? {
            let e = e?;
            entries += 1;
            let name = e.file_name();
            if name.as_ref() == b"." || name.as_ref() == b".." {
                continue;
            }
            let path = e.path();
            match e.file_type()? {
                FileType::Directory => dirs.push(path.as_ref().to_vec()),
                FileType::Regular => {
                    let data = fs.read(path.as_path())?;
                    files += 1;
                    bytes += data.len() as u64;
                    if let (Some(a), Some(b)) = (data.first(), data.last()) {
                        sum = sum.wrapping_add(u64::from(*a) + u64::from(*b));
                    }
                }
                _ => {}
            }
        }
    }
    println!("{entries} entries, {files} files, {bytes} bytes (check {sum:x})");
    Ok(())
}
