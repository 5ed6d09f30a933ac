-- Main lookup: merchant id -> display name and spending category.
CREATE TABLE IF NOT EXISTS reference.merchant_lookup (
    merchant_id   text PRIMARY KEY,
    merchant_name text NOT NULL,
    category      text,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- The three sample merchants every demo and test relies on.
INSERT INTO reference.merchant_lookup (merchant_id, merchant_name, category) VALUES
    ('MER-ABC', 'Alpha Mart',          'Groceries'),
    ('MER-XYZ', 'Tech Gadgets Inc.',   'Electronics'),
    ('MER-123', 'HealthPlus Pharmacy', 'Healthcare')
ON CONFLICT (merchant_id) DO UPDATE
    SET merchant_name = EXCLUDED.merchant_name,
        category      = EXCLUDED.category,
        updated_at    = now()
    WHERE (merchant_lookup.merchant_name, merchant_lookup.category)
          IS DISTINCT FROM (EXCLUDED.merchant_name, EXCLUDED.category);
