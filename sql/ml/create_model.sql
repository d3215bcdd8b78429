-- BigQuery ML path, step 2: train k-means in BigQuery on everyone in scope. OPTIONS take literals
-- only, so num_clusters (an integer the config validated to 2..50) and the columns (catalogue
-- column names checked against shared/discovery/features.py) are rendered by code; no value from
-- a document reaches this text. BigQuery ML standardizes the columns itself.
create or replace model {model}
options (
    model_type = 'kmeans',
    num_clusters = {num_clusters},
    kmeans_init_method = 'kmeans++',
    standardize_features = true,
    max_iterations = 50,
    early_stop = true
) as
select {columns}
from {features}
