"""The aws driver: EC2 images, RDS snapshots and CloudFormation stacks, through boto3 (clouds.aws.driver)."""
from clouds.aws.driver import AwsDriver

__all__ = ["AwsDriver"]
