-- Orders per country in the demo table: a Windmill PostgreSQL script on the postgresql
-- resource f/aws_oidc/rds_iam_postgresql_resource writes (RDS IAM token, verify-full TLS).
-- $1 min_orders (int) = 1
select country, count(*)::int as orders, sum(amount)::text as amount
from orders
group by country
having count(*) >= $1
order by country nulls last;
