//! Encrypts an existing tar as a recovery archive: `seal RECIPIENT.pub IN.tar OUT.vsr`.
//! A development aid (manual tests of `vmscrub recover`, re-encrypting a tar you
//! already have); the scrub writes archives through `ArchiveWriter`.

use std::fs::File;
use std::io::{BufReader, BufWriter};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, recipient, input, output] = args.as_slice() else {
        return Err("usage: seal RECIPIENT.pub IN.tar OUT.vsr".into());
    };
    let recipients = vmscrub_recovery::Recipient::parse(&std::fs::read(recipient)?)?;
    let mut tar = BufReader::new(File::open(input)?);
    let out = BufWriter::new(File::create(output)?);
    vmscrub_recovery::encrypt_tar(out, &recipients, &Default::default(), &mut tar)?;
    Ok(())
}
