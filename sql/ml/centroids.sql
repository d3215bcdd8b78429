-- BigQuery ML path, step 3: the model's centroids in the input (transformed, unstandardized) space;
-- one row per centroid and feature; a categorical feature has the share of each category.
select centroid_id, feature, numerical_value, categorical_value
from ml.centroids(model {model})
order by centroid_id, feature
