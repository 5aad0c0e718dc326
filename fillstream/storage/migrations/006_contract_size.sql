-- COIN-M fills carry their contract size (USD per contract, from /dapi/v1/exchangeInfo
-- contractSize), so `republish` rebuilds the same fill payload from PostgreSQL. NULL on
-- USDⓈ-M (linear: qty is the base asset) and on COIN-M fills stored before this migration or
-- whose symbol's size was not known yet.
ALTER TABLE fills ADD COLUMN contract_size numeric;
