-- 10,000 generated merchants, MER-000001 .. MER-010000, deterministic so reruns change nothing.
-- The transaction generator (jobs/generate_transactions.py) draws known merchants from this range.
WITH numbered AS (
    SELECT n FROM generate_series(1, 10000) AS n
),
named AS (
    SELECT
        'MER-' || lpad(n::text, 6, '0') AS merchant_id,
        (ARRAY['Northwind', 'Blue Harbor', 'Crescent', 'Summit', 'Maple', 'Ironwood',
               'Silverline', 'Golden Gate', 'Red Rock', 'Evergreen'])[1 + n % 10]
          || ' '
          || (ARRAY['Market', 'Electronics', 'Pharmacy', 'Cafe', 'Travel', 'Books',
                    'Outfitters', 'Fuel', 'Home', 'Cinema', 'Clinic'])[1 + n % 11]
          || ' #' || n AS merchant_name,
        CASE WHEN n % 97 = 0 THEN NULL  -- a few merchants without a category
             ELSE (ARRAY['Groceries', 'Electronics', 'Healthcare', 'Dining', 'Travel',
                         'Entertainment', 'Fuel', 'Home', 'Apparel'])[1 + n % 9]
        END AS category
    FROM numbered
)
INSERT INTO reference.merchant_lookup (merchant_id, merchant_name, category)
SELECT merchant_id, merchant_name, category FROM named
ON CONFLICT (merchant_id) DO UPDATE
    SET merchant_name = EXCLUDED.merchant_name,
        category      = EXCLUDED.category,
        updated_at    = now()
    WHERE (merchant_lookup.merchant_name, merchant_lookup.category)
          IS DISTINCT FROM (EXCLUDED.merchant_name, EXCLUDED.category);
