from ferlab.cli.app import main

main()
