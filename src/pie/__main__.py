from pie.cli import main

main()
