//! Compiles the `.proto` schemas with protox (pure Rust), so no system `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "andromede/v1/common.proto",
        "andromede/v1/manifest.proto",
        "andromede/v1/shard.proto",
        "andromede/v1/meta.proto",
        "andromede/v1/authority.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["."])?;
    let mut config = prost_build::Config::new();
    config.bytes(["."]);
    config.btree_map(["."]);
    config.compile_fds(descriptors)?;
    Ok(())
}
