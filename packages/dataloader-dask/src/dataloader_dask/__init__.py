"""dataloader's executor on Dask distributed (`runtime: {executor: dask}`)."""
