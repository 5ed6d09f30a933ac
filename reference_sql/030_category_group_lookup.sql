-- Second lookup: spending category -> reporting group, joined after the merchant lookup.
CREATE TABLE IF NOT EXISTS reference.category_group_lookup (
    category       text PRIMARY KEY,
    category_group text NOT NULL
);

INSERT INTO reference.category_group_lookup (category, category_group) VALUES
    ('Groceries',     'Essentials'),
    ('Healthcare',    'Essentials'),
    ('Fuel',          'Essentials'),
    ('Home',          'Essentials'),
    ('Electronics',   'Discretionary'),
    ('Dining',        'Discretionary'),
    ('Travel',        'Discretionary'),
    ('Entertainment', 'Discretionary'),
    ('Apparel',       'Discretionary')
ON CONFLICT (category) DO UPDATE
    SET category_group = EXCLUDED.category_group
    WHERE category_group_lookup.category_group IS DISTINCT FROM EXCLUDED.category_group;
